/* Entry points of all applets, generated from applets.def. */
#ifndef NS_APPLETS_H
#define NS_APPLETS_H

#define APPLET(name, id, side, desc) int id##_main(int argc, char **argv);
#include "applets.def"
#undef APPLET

#endif
