/* sigv4: see sigv4.h. (stub: being implemented) */
#include "sigv4.h"
