// IKEv2 cryptography: see crypto.hpp (implementation in progress).
#include "control/ike/crypto.hpp"
