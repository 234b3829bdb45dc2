#!/bin/sh
# Turns a script on stdin into a C header defining `static const char NAME_source[]`.
echo "static const char $1_source[] ="
sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/    "/' -e 's/$/\\n"/'
echo "    ;"
