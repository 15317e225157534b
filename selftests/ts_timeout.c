// SPDX-License-Identifier: GPL-2.0
/*
 * Scaled test timeouts. The harness arms alarm(2) with each test's timeout;
 * the selftests are linked with --wrap=alarm, so that it arms this instead,
 * which multiplies the seconds by $TS_TIMEOUT_SCALE (the debug kernel runs
 * with 10). Unset or 1, nothing changes.
 */
#include <stdlib.h>
#include <unistd.h>

#include "ts_util.h"

unsigned int __wrap_alarm(unsigned int seconds)
{
	const char *env = getenv("TS_TIMEOUT_SCALE");
	unsigned long scale = env ? strtoul(env, NULL, 10) : 1;

	if (seconds && scale > 1)
		seconds *= scale;
	return __real_alarm(seconds);
}
