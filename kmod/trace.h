/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tesseract tracepoints: one per reconciliation decision, for perf,
 * trace-cmd and bpftrace (events/tesseract/).
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM tesseract

#if !defined(_TESSERACT_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _TESSERACT_TRACE_H

#include <linux/tracepoint.h>

#include "tesseract.h"

#define TS_SHOW_OUTCOME(outcome)					\
	__print_symbolic(outcome,					\
			 { TS_OUTCOME_REFERENCED, "referenced" },	\
			 { TS_OUTCOME_UNALIGNED, "unaligned" },		\
			 { TS_OUTCOME_NOT_SWAPPED, "not_swapped" },	\
			 { TS_OUTCOME_OTHER_SWAPDEV, "other_swapdev" },	\
			 { TS_OUTCOME_SWAP_CACHED, "swap_cached" },	\
			 { TS_OUTCOME_SLOT_INCOMPLETE, "slot_incomplete" }, \
			 { TS_OUTCOME_STORE_FULL, "store_full" },	\
			 { TS_OUTCOME_NO_MEMORY, "no_memory" },	\
			 { TS_OUTCOME_FLATTENING, "flattening" },	\
			 { TS_OUTCOME_NO_ACCESS, "no_access" },	\
			 { TS_OUTCOME_DISK_QUOTA, "disk_quota" },	\
			 { TS_OUTCOME_IDENTITY, "identity" },		\
			 { TS_OUTCOME_COMMIT_BEHIND, "commit_behind" }, \
			 { TS_OUTCOME_SWAP_MAPPED, "swap_mapped" })

/* A whole-page piece of a guest write: referenced, or why not. */
TRACE_EVENT(tesseract_reconcile,
	    TP_PROTO(u64 disk, u64 block, unsigned long uaddr, int outcome,
		     u32 store_block),
	    TP_ARGS(disk, block, uaddr, outcome, store_block),
	    TP_STRUCT__entry(__field(u64, disk)
			     __field(u64, block)
			     __field(unsigned long, uaddr)
			     __field(int, outcome)
			     __field(u32, store_block)),
	    TP_fast_assign(__entry->disk = disk;
			   __entry->block = block;
			   __entry->uaddr = uaddr;
			   __entry->outcome = outcome;
			   __entry->store_block = store_block;),
	    TP_printk("disk=%llx block=%llu uaddr=%lx %s store_block=%d",
		      __entry->disk, __entry->block, __entry->uaddr,
		      TS_SHOW_OUTCOME(__entry->outcome),
		      (int)__entry->store_block)
);

/* A full-page guest read into a swapped-out page: the entry was dropped. */
TRACE_EVENT(tesseract_false_read,
	    TP_PROTO(u64 disk, unsigned long uaddr),
	    TP_ARGS(disk, uaddr),
	    TP_STRUCT__entry(__field(u64, disk)
			     __field(unsigned long, uaddr)),
	    TP_fast_assign(__entry->disk = disk;
			   __entry->uaddr = uaddr;),
	    TP_printk("disk=%llx uaddr=%lx", __entry->disk, __entry->uaddr)
);

DECLARE_EVENT_CLASS(tesseract_reference,
		    TP_PROTO(u64 disk, u64 block, u32 store_block),
		    TP_ARGS(disk, block, store_block),
		    TP_STRUCT__entry(__field(u64, disk)
				     __field(u64, block)
				     __field(u32, store_block)),
		    TP_fast_assign(__entry->disk = disk;
				   __entry->block = block;
				   __entry->store_block = store_block;),
		    TP_printk("disk=%llx block=%llu store_block=%u",
			      __entry->disk, __entry->block,
			      __entry->store_block)
);

/*
 * A guest read of referenced blocks, served from the store: @nr blocks
 * from @block, whose store blocks follow each other from @store_block.
 */
TRACE_EVENT(tesseract_store_read,
	    TP_PROTO(u64 disk, u64 block, u32 store_block, unsigned int nr),
	    TP_ARGS(disk, block, store_block, nr),
	    TP_STRUCT__entry(__field(u64, disk)
			     __field(u64, block)
			     __field(u32, store_block)
			     __field(unsigned int, nr)),
	    TP_fast_assign(__entry->disk = disk;
			   __entry->block = block;
			   __entry->store_block = store_block;
			   __entry->nr = nr;),
	    TP_printk("disk=%llx block=%llu store_block=%u nr=%u",
		      __entry->disk, __entry->block, __entry->store_block,
		      __entry->nr)
);

/* A reference dropped: its block was written, discarded or zeroed. */
DEFINE_EVENT(tesseract_reference, tesseract_drop,
	     TP_PROTO(u64 disk, u64 block, u32 store_block),
	     TP_ARGS(disk, block, store_block)
);

/*
 * The swap mapper (mapper.c). Images are named by the mapper's index of
 * them, as in debugfs swap_mapper; blocks are 4 KiB blocks of the image.
 */

/* A swap-out mapped to block @block of image @image, not written. */
TRACE_EVENT(tesseract_swap_map,
	    TP_PROTO(u64 slot, unsigned int image, u64 block),
	    TP_ARGS(slot, image, block),
	    TP_STRUCT__entry(__field(u64, slot)
			     __field(unsigned int, image)
			     __field(u64, block)),
	    TP_fast_assign(__entry->slot = slot;
			   __entry->image = image;
			   __entry->block = block;),
	    TP_printk("slot=%llu image=%u block=%llu", __entry->slot,
		      __entry->image, __entry->block)
);

/* A swap-in of a mapped slot read its block from the image (0 or -errno). */
TRACE_EVENT(tesseract_swap_map_read,
	    TP_PROTO(u64 slot, u64 block, int error),
	    TP_ARGS(slot, block, error),
	    TP_STRUCT__entry(__field(u64, slot)
			     __field(u64, block)
			     __field(int, error)),
	    TP_fast_assign(__entry->slot = slot;
			   __entry->block = block;
			   __entry->error = error;),
	    TP_printk("slot=%llu block=%llu error=%d", __entry->slot,
		      __entry->block, __entry->error)
);

/* Before a write of @block, @slots slots mapped to it got a store copy. */
TRACE_EVENT(tesseract_swap_map_copy,
	    TP_PROTO(unsigned int image, u64 block, unsigned int slots,
		     u32 store_block),
	    TP_ARGS(image, block, slots, store_block),
	    TP_STRUCT__entry(__field(unsigned int, image)
			     __field(u64, block)
			     __field(unsigned int, slots)
			     __field(u32, store_block)),
	    TP_fast_assign(__entry->image = image;
			   __entry->block = block;
			   __entry->slots = slots;
			   __entry->store_block = store_block;),
	    TP_printk("image=%u block=%llu slots=%u store_block=%u",
		      __entry->image, __entry->block, __entry->slots,
		      __entry->store_block)
);

#endif /* _TESSERACT_TRACE_H */

#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE trace
#include <trace/define_trace.h>
