/* http: see http.h. (stub: being implemented) */
#include "http.h"
