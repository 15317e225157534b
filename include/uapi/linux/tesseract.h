/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * tesseract: userspace ABI (ioctls and structures shared with tools/).
 *
 * TESSERACT_ABI_VERSION changes whenever an incompatible change is made to
 * anything in this file; the module reports its value in
 * /sys/module/tesseract/abi_version.
 */
#ifndef _UAPI_LINUX_TESSERACT_H
#define _UAPI_LINUX_TESSERACT_H

#define TESSERACT_ABI_VERSION	1

#endif /* _UAPI_LINUX_TESSERACT_H */
