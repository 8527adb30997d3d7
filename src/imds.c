/* imds: see imds.h. (stub: being implemented) */
#include "imds.h"
