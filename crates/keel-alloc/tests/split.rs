//! The split allocator as the test binary's global allocator: blocks keep their
//! contents when they grow or shrink across the threshold.

#[global_allocator]
static ALLOCATOR: keel_alloc::SplitAllocator = keel_alloc::SplitAllocator;

use keel_alloc::LARGE;

#[test]
fn contents_survive_growing_and_shrinking_across_the_threshold() {
    let mut v: Vec<u8> = (0..=255u8).cycle().take(LARGE / 2).collect();
    v.resize(LARGE * 3, 7); // mimalloc → system
    assert!(
        v[..LARGE / 2]
            .iter()
            .copied()
            .eq((0..=255u8).cycle().take(LARGE / 2))
    );
    assert!(v[LARGE / 2..].iter().all(|&b| b == 7));
    v.truncate(1000);
    v.shrink_to_fit(); // system → mimalloc
    assert!(v.iter().copied().eq((0..=255u8).cycle().take(1000)));
    let zeroed = vec![0u64; LARGE]; // alloc_zeroed, large
    assert!(zeroed.iter().all(|&x| x == 0));
    let small_zeroed: Box<[u64]> = vec![0u64; 16].into_boxed_slice();
    assert!(small_zeroed.iter().all(|&x| x == 0));
}
