// Includes Intel IPsec-MB without its pre-0.53 short macro names; for crypto/*.cpp only.
#pragma once

#ifndef NO_COMPAT_IMB_API_053
#define NO_COMPAT_IMB_API_053
#endif
#include <intel-ipsec-mb.h>
