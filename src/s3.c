/* s3: see s3.h. (stub: being implemented) */
#include "s3.h"
