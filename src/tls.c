/* tls: see tls.h. (stub: being implemented) */
#include "tls.h"
