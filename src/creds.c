/* creds: see creds.h. (stub: being implemented) */
#include "creds.h"
