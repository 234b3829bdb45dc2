/*  common/version.h: the one version string of replgate: `replgate --version` prints it and
    the broker's `ping` answers with it. Raise it here and nowhere else. */
#ifndef RG_VERSION_H
#define RG_VERSION_H

#define REPLGATE_VERSION "0.1.0"

#endif
