/*  broker/launch.h: starting runs, the starts of a pass in one commit (see launch.c). */
#ifndef RG_LAUNCH_H
#define RG_LAUNCH_H
#include "broker/broker.h"

//  Starts whatever queued work can start now. Call after anything that may have queued
//  work or freed a slot (the loop does, every pass).
void launch_ready (broker_t *broker);

#endif
