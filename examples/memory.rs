//! Measures tannoy's memory: bytes per exact subscription at a million
//! (channel, subscriber) pairs, bytes per pattern subscription at 100,000
//! patterns, and that a stalled subscriber's queue stays bounded however
//! much is published to it.
//!
//! Every allocation goes through a counting allocator, so the figures are
//! the heap bytes the broker really holds (allocator overhead excluded).
//!
//! Run: `cargo run --release --example memory`

use std::alloc::System;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tannoy::{Broker, Bytes, Subscriber};

#[path = "../benches/support/workload.rs"]
mod workload;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Heap bytes currently held, as counted by the allocator. (Its
/// `bytes_allocated` and `bytes_deallocated` already include what
/// reallocations grew or shrank; `bytes_reallocated` repeats it.)
fn heap() -> isize {
    let stats = GLOBAL.stats();
    stats.bytes_allocated as isize - stats.bytes_deallocated as isize
}

/// Heap bytes held now minus at `start`.
fn since(start: isize) -> f64 {
    (heap() - start) as f64
}

fn main() {
    println!("tannoy memory (heap bytes held, counted by the allocator)\n");
    let _region = Region::new(GLOBAL);

    // 1,000 subscribers x 1,000 channels each = 1,000,000 exact
    // subscriptions. Two shapes: every subscriber on the same 1,000
    // channels, and every pair on its own channel.
    for (label, shared) in [
        ("1,000 subscribers on the same 1,000 channels", true),
        (
            "1,000 subscribers on 1,000 channels each, all distinct",
            false,
        ),
    ] {
        let names: Vec<Vec<String>> = (0..1_000)
            .map(|s| {
                (0..1_000)
                    .map(|c| {
                        if shared {
                            format!("tenant:{c}:user:events")
                        } else {
                            format!("tenant:{s}:user:{c}:events")
                        }
                    })
                    .collect()
            })
            .collect();
        let start = heap();
        let broker = Broker::new();
        let subs: Vec<Subscriber> = names
            .iter()
            .map(|channels| {
                let sub = broker.subscriber();
                sub.subscribe(channels);
                sub
            })
            .collect();
        let bytes = since(start);
        println!(
            "exact: {label}\n  {:.1} MiB for 1,000,000 subscriptions = {:.0} bytes each (names ~{} bytes)",
            bytes / (1 << 20) as f64,
            bytes / 1e6,
            names[0][0].len()
        );
        drop(subs);
        drop(broker);
    }

    // 100,000 patterns of the realistic mix, held by 100 subscribers.
    let patterns = workload::realistic_patterns(100_000);
    let start = heap();
    let broker = Broker::new();
    let subs: Vec<Subscriber> = patterns
        .chunks(1_000)
        .map(|chunk| {
            let sub = broker.subscriber();
            sub.psubscribe(chunk);
            sub
        })
        .collect();
    let bytes = since(start);
    let average_len = patterns.iter().map(Vec::len).sum::<usize>() as f64 / patterns.len() as f64;
    println!(
        "\npatterns: 100,000 realistic patterns over 100 subscribers\n  {:.1} MiB = {:.0} bytes per pattern subscription (patterns ~{average_len:.0} bytes)",
        bytes / (1 << 20) as f64,
        bytes / 1e5
    );
    drop(subs);
    drop(broker);

    // A subscriber that never reads: its queue holds at most its capacity,
    // whatever is published.
    println!("\nstalled subscriber (queue capacity 1,024, 100-byte payloads, never reads):");
    let broker = Broker::new();
    let stalled = broker.subscriber();
    stalled.subscribe(["firehose"]);
    let start = heap();
    let mut published = 0u64;
    for target in [1_000u64, 10_000, 100_000, 1_000_000] {
        while published < target {
            broker.publish("firehose", Bytes::from(vec![b'x'; 100]));
            published += 1;
        }
        println!(
            "  after {published:>9} publishes: {:>7.1} KiB held, {} queued, {} dropped",
            since(start) / 1024.0,
            stalled.len(),
            stalled.dropped()
        );
    }
    assert_eq!(stalled.len(), stalled.capacity());
}
