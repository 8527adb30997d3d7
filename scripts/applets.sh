#!/bin/sh
# Prints the applet names of applets/applets.def, one a line.
sed -n 's/^APPLET("\([^"]*\)".*/\1/p' "$(dirname "$0")/../applets/applets.def"
