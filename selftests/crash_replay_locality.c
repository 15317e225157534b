// SPDX-License-Identifier: GPL-2.0
/*
 * Crash replay while referenced blocks are moved: the cleaner, compactor
 * and flatten variants of crash_replay.c, in a program of their own so that
 * each program stays within the test VM's time per program.
 */
#define CRASH_REPLAY_LOCALITY
#include "crash_replay.c"
