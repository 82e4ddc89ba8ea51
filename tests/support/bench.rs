//! What the benchmarks share: concurrent senders with their latencies.

use std::future::Future;
use std::time::{Duration, Instant};

/// The `p` quantile (0..=1) of sorted latencies.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// `concurrency` tasks calling `send(n)` for `n` in `0..total` (each task its own share), timed:
/// (calls, elapsed, p50, p99).
pub async fn concurrent<F, Fut>(total: usize, concurrency: usize, send: F) -> (usize, Duration, Duration, Duration)
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let per_sender = total / concurrency;
    let started = Instant::now();
    let senders: Vec<_> = (0..concurrency)
        .map(|sender| {
            let send = send.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_sender);
                for i in 0..per_sender {
                    let sent = Instant::now();
                    send(sender * per_sender + i).await;
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(total);
    for sender in senders {
        latencies.extend(sender.await.expect("sender"));
    }
    let elapsed = started.elapsed();
    latencies.sort();
    (latencies.len(), elapsed, percentile(&latencies, 0.50), percentile(&latencies, 0.99))
}
