/* The nsign version. Bumped by hand on release. */
#ifndef NS_VERSION_H
#define NS_VERSION_H
#define NSIGN_VERSION "0.1.0"
#endif
