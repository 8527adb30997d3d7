/* aws: see aws.h. (stub: being implemented) */
#include "aws.h"
