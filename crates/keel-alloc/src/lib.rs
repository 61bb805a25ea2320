//! The process's memory allocator: mimalloc for Keel's many small, short-lived
//! allocations (rows, JSON values, headers), the system allocator for blocks of
//! [`LARGE`] bytes and more.
//!
//! Why the split: mimalloc served reads ~20 % faster than glibc's malloc, whose
//! fast-bin consolidation alone took 2 % of a busy server's CPU, but it keeps a freed
//! block's pages for reuse. The 19 MiB that every argon2id password hash allocates
//! would then stay resident after the first login (idle RSS 45 MB instead of 16). glibc
//! maps blocks that large on their own and unmaps them when they are freed.
//!
//! This is the workspace's only `unsafe` code: delegation to two allocators, chosen
//! by size, so that a block is always freed by the allocator that gave it.
#![deny(unsafe_op_in_unsafe_fn)]

use mimalloc::MiMalloc;
use std::alloc::{GlobalAlloc, Layout, System};

/// Blocks of at least this many bytes come from the system allocator.
pub const LARGE: usize = 1 << 20;

/// mimalloc below [`LARGE`] bytes, the system allocator from there up. Install it
/// with `#[global_allocator] static A: keel_alloc::SplitAllocator = keel_alloc::SplitAllocator;`.
pub struct SplitAllocator;

/// Which allocator serves a block of `size` bytes. The same test on allocation and on
/// release (`Layout` carries the size) keeps each block with its allocator.
fn large(size: usize) -> bool {
    size >= LARGE
}

// SAFETY: every method forwards the caller's arguments, under the same contract, to
// the allocator that `large(size)` picks; a block is only ever released or resized by
// the allocator that `large` picked for its size when it was allocated.
unsafe impl GlobalAlloc for SplitAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: `layout` meets `alloc`'s contract (the caller's obligation).
        unsafe {
            if large(layout.size()) {
                System.alloc(layout)
            } else {
                MiMalloc.alloc(layout)
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        unsafe {
            if large(layout.size()) {
                System.alloc_zeroed(layout)
            } else {
                MiMalloc.alloc_zeroed(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated here with `layout`, so by the allocator that
        // `large(layout.size())` picks now.
        unsafe {
            if large(layout.size()) {
                System.dealloc(ptr, layout)
            } else {
                MiMalloc.dealloc(ptr, layout)
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (was, will) = (large(layout.size()), large(new_size));
        if was == will {
            // SAFETY: the block stays with the allocator that gave it.
            return unsafe {
                if was {
                    System.realloc(ptr, layout, new_size)
                } else {
                    MiMalloc.realloc(ptr, layout, new_size)
                }
            };
        }
        // Across the threshold: a new block from the other allocator, the contents
        // copied, the old block released to its own.
        // SAFETY: `realloc`'s contract makes `new_size` with `layout.align()` a valid
        // layout (non-zero, not overflowing `isize` when rounded up).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: `new_layout` is valid (above).
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are live, distinct and at least this long; `ptr`
            // was allocated here with `layout`.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}
