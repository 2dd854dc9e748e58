// IKEv2 message codec: see message.hpp (implementation in progress).
#include "control/ike/message.hpp"
