//! With the split allocator as the process's allocator, a large block's memory leaves
//! the process when it is freed: the reason for the split (argon2id's 19 MiB per
//! password hash would otherwise stay resident). Alone in its binary, so no other
//! test's allocations move the figures.

#[global_allocator]
static ALLOCATOR: keel_alloc::SplitAllocator = keel_alloc::SplitAllocator;

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_freed_large_block_leaves_resident_memory() {
    // The size of argon2id's block (19 MiB), touched page by page as a hash does.
    let size = 19 << 20;
    let before = rss_kib();
    let mut block = vec![0u8; size];
    for i in (0..size).step_by(4096) {
        block[i] = 1;
    }
    let during = rss_kib();
    assert!(
        during >= before + 16 * 1024,
        "the block is resident while in use: {before} → {during} KiB"
    );
    assert_eq!(
        block
            .iter()
            .step_by(4096)
            .map(|&b| u64::from(b))
            .sum::<u64>(),
        (size / 4096) as u64
    );
    drop(block);
    let after = rss_kib();
    assert!(
        after + 16 * 1024 <= during,
        "freed, it leaves: {during} → {after} KiB"
    );
}
