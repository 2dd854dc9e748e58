#include "control/nhrp/packet.hpp"
