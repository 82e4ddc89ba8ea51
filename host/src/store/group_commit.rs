//! Group commit for the inbound path: concurrent ingests share one transaction and one commit.
//!
//! A caller queues its message and waits for its own answer. Whoever finds fewer than
//! `max_batches` batches running starts a worker task; a worker takes everything queued (up to
//! `max_size`), stores it in one transaction, answers each caller after the commit, and goes on
//! while the queue is not empty. There is no waiting window: a lone message goes alone at once,
//! and under load the queue fills while the running batches commit, so batches grow with the load.
//!
//! Batches run in their own task, so a caller that goes away (a webhook whose client hung up)
//! never cuts a batch short for the others. A message whose caller left before a worker took it is
//! not stored (its provider retries); once taken, it is committed with its batch-mates (a retry is
//! then a duplicate), except when its batch fails and is stored again one by one, which skips
//! the callers that left. Inside a batch each message is stored under its own savepoint, so one that
//! fails is rolled back alone and answered with its error; a failure of the batch itself (a
//! commit refused) stores each message again on its own, so every caller gets its own answer,
//! except when the database cannot be reached: then every caller hears so at once. Messages are
//! sorted by channel and conversation key, so concurrent batches lock customers and conversations
//! in one order; a message that still loses a deadlock or a lock wait goes again in a later batch.
//!
//! The queue is bounded: past `max_queued` messages waiting, a new one is refused at once, and a
//! caller whose message is still waiting after `max_wait` (the batches ahead stuck on a lock, or
//! the database hanging) takes it back out and is answered unavailable. Either way it was not
//! stored and its provider or bridge delivers it again. A message already in a batch is waited
//! for: that batch may commit it.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;

use super::{Ingested, NewInboundMessage, StoreError, StoreResult};

/// How many times a message may lose a deadlock before it is answered with an error.
const MAX_RETRIES: u8 = 3;
/// The longest a message waits in the queue before its caller takes it out and is answered
/// unavailable (a webhook's provider waits longer than this; Telegram gives up after a minute).
const MAX_WAIT: Duration = Duration::from_secs(10);
/// Messages that may wait per batch slot before new ones are refused.
const QUEUED_PER_BATCH: usize = 4;

/// What one message of a batch came to.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per message of a batch, short-lived, as `Ingested`
pub(super) enum BatchOutcome {
    Done(StoreResult<Ingested>),
    /// Chosen as a deadlock victim, or gave up waiting for a lock, and rolled back: store it again.
    Retry,
}

/// A store's transaction for a batch: one outcome per message, in the batch's order. An `Err`
/// means nothing of the batch was committed.
pub(super) trait IngestBatch: Clone + Send + Sync + 'static {
    fn ingest_batch(&self, batch: &[NewInboundMessage]) -> impl Future<Output = StoreResult<Vec<BatchOutcome>>> + Send;
}

pub(super) struct GroupCommit {
    queue: Mutex<Queue>,
    max_batches: usize,
    max_size: usize,
    max_queued: usize,
    max_wait: Duration,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Pending>,
    /// Workers running (each holds at most one batch at a time).
    workers: usize,
    /// The id of the next message queued.
    next_id: u64,
}

struct Pending {
    message: NewInboundMessage,
    reply: oneshot::Sender<StoreResult<Ingested>>,
    retries: u8,
    id: u64,
}

impl GroupCommit {
    /// At most `max_batches` batches at once, of at most `max_size` messages each.
    pub(super) fn new(max_batches: usize, max_size: usize) -> Self {
        assert!(max_batches > 0 && max_size > 0);
        let max_queued = max_batches * max_size * QUEUED_PER_BATCH;
        Self { queue: Mutex::new(Queue::default()), max_batches, max_size, max_queued, max_wait: MAX_WAIT }
    }

    /// Stores `message` in the next batch; answers after the commit that holds it.
    pub(super) async fn ingest<S: IngestBatch>(self: &Arc<Self>, store: &S, message: NewInboundMessage) -> StoreResult<Ingested> {
        let (reply, mut answer) = oneshot::channel();
        let (id, start_worker) = {
            let mut queue = self.lock();
            if queue.waiting.len() >= self.max_queued {
                return Err(unavailable(format!("{} inbound messages already waiting for the database", queue.waiting.len())));
            }
            let id = queue.next_id;
            queue.next_id += 1;
            queue.waiting.push_back(Pending { message, reply, retries: 0, id });
            let start = queue.workers < self.max_batches;
            if start {
                queue.workers += 1;
            }
            (id, start)
        };
        if start_worker {
            self.start_worker(store);
        }
        loop {
            match tokio::time::timeout(self.max_wait, &mut answer).await {
                // The sender is dropped unanswered only if the worker's task is torn down (the
                // runtime shutting down): the message may or may not be stored.
                Ok(answered) => return answered.unwrap_or_else(|_| Err(StoreError::Unavailable(sqlx::Error::WorkerCrashed))),
                // Still waiting (or waiting again, after a lock wait or deadlock): taken back out.
                Err(_elapsed) if self.withdraw(id) => {
                    tracing::warn!(
                        wait_secs = self.max_wait.as_secs_f32(),
                        "an inbound message waited too long for the database"
                    );
                    return Err(unavailable(format!("waited over {:?} for the database", self.max_wait)));
                }
                // In a batch: its answer comes after that batch's commit.
                Err(_elapsed) => {}
            }
        }
    }

    /// Takes message `id` out of the queue; `false` if a batch has it.
    fn withdraw(&self, id: u64) -> bool {
        let mut queue = self.lock();
        let found = queue.waiting.iter().position(|pending| pending.id == id);
        found.and_then(|at| queue.waiting.remove(at)).is_some()
    }

    /// The queue, also after a panic elsewhere while it was held (its state is consistent
    /// between any two statements).
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A worker (already counted in `workers`) in a task of its own.
    fn start_worker<S: IngestBatch>(self: &Arc<Self>, store: &S) {
        let worker = Worker { commit: Arc::clone(self), store: store.clone(), stopped: false };
        tokio::spawn(worker.work());
    }

    /// The next batch, sorted; `None` when nothing is waiting: then the worker is uncounted
    /// (under the same lock as the check, so a message queued meanwhile starts a new one) and
    /// `stopped` is set.
    fn next_batch(&self, stopped: &mut bool) -> Option<Vec<Pending>> {
        let mut queue = self.lock();
        // A caller that went away before its message was taken: not stored.
        queue.waiting.retain(|pending| !pending.reply.is_closed());
        if queue.waiting.is_empty() {
            queue.workers -= 1;
            *stopped = true;
            return None;
        }
        let take = queue.waiting.len().min(self.max_size);
        let mut batch: Vec<Pending> = queue.waiting.drain(..take).collect();
        drop(queue);
        // Stable: the messages of one conversation keep their order of arrival.
        batch.sort_by(|a, b| lock_order(&a.message).cmp(&lock_order(&b.message)));
        Some(batch)
    }
}

/// A running worker: takes the queue batch after batch until it is empty. Should its task end
/// any other way (a panic, the runtime shutting down), it is uncounted on drop, and after a
/// panic another worker takes over what is waiting.
struct Worker<S: IngestBatch> {
    commit: Arc<GroupCommit>,
    store: S,
    /// `next_batch` found the queue empty and uncounted this worker.
    stopped: bool,
}

impl<S: IngestBatch> Worker<S> {
    async fn work(mut self) {
        while let Some(batch) = self.commit.next_batch(&mut self.stopped) {
            let retry = run(&self.store, batch).await;
            if !retry.is_empty() {
                let mut queue = self.commit.lock();
                for pending in retry.into_iter().rev() {
                    queue.waiting.push_front(pending);
                }
            }
        }
    }
}

impl<S: IngestBatch> Drop for Worker<S> {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        let restart = {
            let mut queue = self.commit.lock();
            queue.workers -= 1;
            let restart = std::thread::panicking() && !queue.waiting.is_empty();
            if restart {
                queue.workers += 1;
            }
            restart
        };
        if restart {
            tracing::error!("an inbound batch worker panicked; another one takes over");
            self.commit.start_worker(&self.store);
        }
    }
}

/// `Unavailable` for a message that was not stored: the database could not be reached, or the
/// queue was full or too slow.
fn unavailable(why: String) -> StoreError {
    StoreError::Unavailable(sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, why)))
}

/// The order rows are locked in: the channel, the conversation (a group chat's id, or the
/// customer for one-to-one channels), the customer.
fn lock_order(message: &NewInboundMessage) -> (uuid::Uuid, &str, &str) {
    let conversation = message.external_conversation_id.as_deref().unwrap_or(&message.external_user_id);
    (message.channel_instance_id, conversation, &message.external_user_id)
}

/// Stores one batch and answers its callers; returns the deadlock victims to queue again.
async fn run<S: IngestBatch>(store: &S, batch: Vec<Pending>) -> Vec<Pending> {
    let messages: Vec<NewInboundMessage> = batch.iter().map(|pending| pending.message.clone()).collect();
    let outcomes = match guarded(store, messages).await {
        Ok(outcomes) if outcomes.len() == batch.len() => outcomes,
        Ok(outcomes) => {
            // A store bug; whatever it committed, the callers cannot be told which is which.
            let err = format!("the store answered {} of a batch of {} inbound messages", outcomes.len(), batch.len());
            tracing::error!("{err}");
            answer_all(batch, || internal(err.clone()));
            return Vec::new();
        }
        Err(err) if batch.len() == 1 => vec![BatchOutcome::Done(Err(err))],
        Err(StoreError::Unavailable(cause)) => {
            // The database cannot be reached: storing each message alone would wait as long again,
            // once per message. Nothing was stored; the providers deliver again later.
            tracing::warn!(error = %cause, messages = batch.len(), "an inbound batch found the database unavailable");
            let cause = cause.to_string();
            answer_all(batch, || unavailable(cause.clone()));
            return Vec::new();
        }
        Err(err) if !nothing_committed(&err) => {
            // Failed after the database may have committed (an answer that did not decode, a
            // panic): storing the messages again could store those without a provider id twice.
            tracing::error!(error = %err, messages = batch.len(), "an inbound batch failed after it reached the database");
            let message = err.to_string();
            answer_all(batch, || internal(message.clone()));
            return Vec::new();
        }
        Err(err) => {
            // Nothing was committed: each message goes again on its own, for its own answer.
            tracing::warn!(error = %err, messages = batch.len(), "an inbound batch failed; storing its messages one by one");
            let mut retry = Vec::new();
            for pending in batch {
                if pending.reply.is_closed() {
                    continue;
                }
                let alone = guarded(store, vec![pending.message.clone()]).await;
                match alone.map(|mut outcomes| outcomes.pop()) {
                    Ok(Some(BatchOutcome::Done(result))) => answer(pending, result),
                    Ok(Some(BatchOutcome::Retry)) => retry_or_fail(pending, &mut retry),
                    Ok(None) => {
                        let message = "the store answered nothing for an inbound message".to_owned();
                        answer(pending, Err(internal(message)))
                    }
                    Err(err) => answer(pending, Err(err)),
                }
            }
            return retry;
        }
    };
    let mut retry = Vec::new();
    for (pending, outcome) in batch.into_iter().zip(outcomes) {
        match outcome {
            BatchOutcome::Done(result) => answer(pending, result),
            BatchOutcome::Retry => retry_or_fail(pending, &mut retry),
        }
    }
    retry
}

/// The store's batch in a task of its own, so that a panic fails the batch, not the worker.
async fn guarded<S: IngestBatch>(store: &S, messages: Vec<NewInboundMessage>) -> StoreResult<Vec<BatchOutcome>> {
    let store = store.clone();
    match tokio::spawn(async move { store.ingest_batch(&messages).await }).await {
        Ok(result) => result,
        Err(_panic) => Err(StoreError::Refused { code: "panic".into(), message: "storing an inbound batch panicked".into() }),
    }
}

/// Whether a batch's error says the database refused it, so that nothing of it was committed:
/// an error the database returned, and the ones the store maps such errors to.
fn nothing_committed(err: &StoreError) -> bool {
    match err {
        StoreError::Database(cause) => matches!(cause, sqlx::Error::Database(_)),
        StoreError::Conflict(_) | StoreError::Missing(_) => true,
        StoreError::Refused { code, .. } => code != "panic" && code != "internal",
        _ => false,
    }
}

/// A batch that went wrong on our side (a store bug, a failure after the database answered).
fn internal(message: String) -> StoreError {
    StoreError::Refused { code: "internal".into(), message }
}

fn answer_all(batch: Vec<Pending>, err: impl Fn() -> StoreError) {
    for pending in batch {
        answer(pending, Err(err()));
    }
}

fn retry_or_fail(mut pending: Pending, retry: &mut Vec<Pending>) {
    pending.retries += 1;
    if pending.retries > MAX_RETRIES {
        let err = StoreError::Refused { code: "40P01".into(), message: "deadlock or lock wait, retries exhausted".into() };
        answer(pending, Err(err));
    } else {
        retry.push(pending);
    }
}

fn answer(pending: Pending, result: StoreResult<Ingested>) {
    // The caller may have gone away meanwhile; its message is stored all the same.
    let _ = pending.reply.send(result);
}

#[cfg(test)]
mod tests {
    //! The queue's mechanics over a store that records its batches (single-threaded runtime, so
    //! tasks run only where the test yields); the SQL of each store is covered by the store
    //! contract tests (tests/e2e/store_contract.rs) on both databases.

    use serde_json::json;
    use tokio::sync::Semaphore;
    use tokio::task::JoinHandle;
    use uuid::Uuid;

    use super::*;
    use crate::store::MessageDirection;

    /// Stores nothing; answers by the message's text: `dup` a duplicate, `retry` a deadlock victim
    /// (once; `retry always` every time), `refuse` an error, `panic` a panic, `fail batch` fails
    /// any batch of more than one message, `unreachable` fails any batch as the database down,
    /// `undecodable` fails any batch of more than one message after the database answered,
    /// `short` leaves the batch's last message unanswered. Each batch is recorded when taken, then
    /// waits for a permit of `gate`.
    #[derive(Clone)]
    struct Recorder {
        batches: Arc<Mutex<Vec<Vec<String>>>>,
        gate: Arc<Semaphore>,
    }

    impl Recorder {
        fn new() -> Self {
            Self { batches: Arc::default(), gate: Arc::new(Semaphore::new(0)) }
        }

        fn open(&self) {
            self.gate.add_permits(Semaphore::MAX_PERMITS >> 4);
        }

        fn batches(&self) -> Vec<Vec<String>> {
            self.batches.lock().expect("batches").clone()
        }
    }

    impl IngestBatch for Recorder {
        async fn ingest_batch(&self, batch: &[NewInboundMessage]) -> StoreResult<Vec<BatchOutcome>> {
            let texts: Vec<String> = batch.iter().map(|m| m.text.clone().unwrap_or_default()).collect();
            let retried = self.batches.lock().expect("batches").iter().flatten().filter(|t| *t == "retry").count();
            self.batches.lock().expect("batches").push(texts.clone());
            self.gate.acquire().await.expect("gate").forget();
            if texts.iter().any(|t| t == "panic") {
                panic!("a store bug");
            }
            if texts.iter().any(|t| t == "unreachable") {
                return Err(StoreError::Unavailable(sqlx::Error::PoolTimedOut));
            }
            if batch.len() > 1 && texts.iter().any(|t| t == "fail batch") {
                return Err(StoreError::Refused { code: "XX000".into(), message: "commit failed".into() });
            }
            if batch.len() > 1 && texts.iter().any(|t| t == "undecodable") {
                return Err(StoreError::Database(sqlx::Error::ColumnNotFound("customer".into())));
            }
            let answered = if texts.iter().any(|t| t == "short") { texts.len() - 1 } else { texts.len() };
            Ok(texts[..answered]
                .iter()
                .map(|t| match t.as_str() {
                    "dup" => BatchOutcome::Done(Ok(Ingested::Duplicate)),
                    "retry" if retried == 0 => BatchOutcome::Retry,
                    "retry always" => BatchOutcome::Retry,
                    "refuse" => BatchOutcome::Done(Err(StoreError::Missing("channel".into()))),
                    _ => BatchOutcome::Done(Err(StoreError::Conflict(t.clone()))),
                })
                .collect())
        }
    }

    /// What a call was answered: the text it was stored as (the recorder answers `Conflict(text)`
    /// for a plain message), `dup`, or the error's kind.
    fn answer_of(result: StoreResult<Ingested>) -> String {
        match result {
            Ok(Ingested::Duplicate) => "dup".into(),
            Ok(Ingested::Stored { .. }) => unreachable!("the recorder stores nothing"),
            Err(StoreError::Conflict(text)) => text,
            Err(StoreError::Missing(_)) => "missing".into(),
            Err(StoreError::Refused { code, .. }) => format!("refused {code}"),
            Err(StoreError::Database(_)) => "database".into(),
            Err(StoreError::Unavailable(_)) => "unavailable".into(),
            Err(other) => format!("{other}"),
        }
    }

    fn message(user: &str, text: &str) -> NewInboundMessage {
        NewInboundMessage {
            tenant_id: Uuid::nil(),
            channel_instance_id: Uuid::nil(),
            external_user_id: user.into(),
            external_conversation_id: None,
            provider_message_id: None,
            sender_name: None,
            sender_username: None,
            text: Some(text.into()),
            attachments: json!([]),
            raw: json!({}),
            sent_at: None,
            direction: MessageDirection::Inbound,
        }
    }

    /// One spawned ingest per (user, text), all queued when this returns.
    async fn submit(commit: &Arc<GroupCommit>, store: &Recorder, messages: &[(&str, &str)]) -> Vec<JoinHandle<String>> {
        let calls = messages
            .iter()
            .map(|(user, text)| {
                let (commit, store, message) = (Arc::clone(commit), store.clone(), message(user, text));
                tokio::spawn(async move { answer_of(commit.ingest(&store, message).await) })
            })
            .collect();
        settle().await;
        calls
    }

    /// Lets every spawned task run until it waits.
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    async fn answers(calls: Vec<JoinHandle<String>>) -> Vec<String> {
        let mut answers = Vec::new();
        for call in calls {
            answers.push(call.await.expect("call"));
        }
        answers
    }

    #[tokio::test]
    async fn messages_queued_behind_a_batch_go_together_and_each_gets_its_own_answer() {
        let commit = Arc::new(GroupCommit::new(1, 64));
        let store = Recorder::new();
        let first = submit(&commit, &store, &[("a", "a1")]).await;
        assert_eq!(store.batches(), [["a1"]], "a lone message goes at once");
        let rest = submit(&commit, &store, &[("b", "b1"), ("a", "a2"), ("c", "dup"), ("b", "refuse"), ("a", "a3")]).await;
        store.open();
        assert_eq!(answers(first).await, ["a1"]);
        assert_eq!(answers(rest).await, ["b1", "a2", "dup", "missing", "a3"]);
        // Sorted by conversation key for the lock order; one user's messages keep their order.
        assert_eq!(store.batches(), [vec!["a1"], vec!["a2", "a3", "b1", "refuse", "dup"]]);
    }

    #[tokio::test]
    async fn batches_are_capped_and_run_side_by_side_up_to_the_limit() {
        let commit = Arc::new(GroupCommit::new(2, 3));
        let store = Recorder::new();
        let mut held = submit(&commit, &store, &[("a", "1")]).await;
        held.extend(submit(&commit, &store, &[("b", "2")]).await);
        assert_eq!(store.batches(), [vec!["1"], vec!["2"]], "a second worker while the first is busy");
        let queued = submit(&commit, &store, &[("c", "3"), ("d", "4"), ("e", "5"), ("f", "6"), ("g", "7")]).await;
        assert_eq!(store.batches().len(), 2, "no third worker");
        store.open();
        assert_eq!(answers(held).await, ["1", "2"]);
        assert_eq!(answers(queued).await, ["3", "4", "5", "6", "7"]);
        let sizes: Vec<usize> = store.batches().iter().map(Vec::len).collect();
        assert_eq!(sizes.iter().sum::<usize>(), 7);
        assert!(sizes.iter().all(|&n| n <= 3), "{sizes:?}");
        assert_eq!(commit.queue.lock().expect("queue").workers, 0, "workers stop when the queue is empty");
    }

    #[tokio::test]
    async fn a_caller_that_left_before_its_batch_is_not_stored_and_cuts_nothing() {
        let commit = Arc::new(GroupCommit::new(1, 64));
        let store = Recorder::new();
        let first = submit(&commit, &store, &[("a", "a1")]).await;
        let mut queued = submit(&commit, &store, &[("b", "b1"), ("c", "c1"), ("d", "d1")]).await;
        queued.remove(1).abort();
        settle().await;
        // The first caller leaves while its batch is running: the batch goes on for the others.
        let leaving = submit(&commit, &store, &[("e", "e1")]).await;
        first.into_iter().for_each(|call| call.abort());
        store.open();
        assert_eq!(answers(queued).await, ["b1", "d1"]);
        assert_eq!(answers(leaving).await, ["e1"]);
        assert_eq!(store.batches(), [vec!["a1"], vec!["b1", "d1", "e1"]]);
    }

    #[tokio::test]
    async fn deadlock_victims_go_again_and_give_up_after_their_retries() {
        let commit = Arc::new(GroupCommit::new(1, 64));
        let store = Recorder::new();
        store.open();
        let calls = submit(&commit, &store, &[("a", "a1"), ("b", "retry"), ("c", "retry always")]).await;
        assert_eq!(answers(calls).await, ["a1", "retry", "refused 40P01"]);
        let batches = store.batches();
        assert_eq!(batches[0], ["a1", "retry", "retry always"]);
        assert_eq!(batches[1], ["retry", "retry always"]);
        assert_eq!(batches.len(), 1 + MAX_RETRIES as usize, "{batches:?}");
    }

    #[tokio::test]
    async fn a_failed_batch_is_stored_again_one_by_one_and_a_panic_fails_only_its_batch() {
        let commit = Arc::new(GroupCommit::new(1, 64));
        let store = Recorder::new();
        let first = submit(&commit, &store, &[("z", "z1")]).await;
        let calls = submit(&commit, &store, &[("a", "a1"), ("b", "fail batch"), ("c", "c1")]).await;
        store.open();
        assert_eq!(answers(first).await, ["z1"]);
        assert_eq!(answers(calls).await, ["a1", "fail batch", "c1"]);
        assert_eq!(store.batches()[1..], [vec!["a1", "fail batch", "c1"], vec!["a1"], vec!["fail batch"], vec!["c1"]]);

        // The database down: every caller hears so at once, nothing is tried one by one.
        let before = store.batches().len();
        let down = submit(&commit, &store, &[("a", "a2"), ("u", "unreachable"), ("c", "c2")]).await;
        assert_eq!(answers(down).await, ["unavailable", "unavailable", "unavailable"]);
        assert_eq!(store.batches().len(), before + 1);

        let panicked = submit(&commit, &store, &[("p", "panic")]).await;
        assert_eq!(answers(panicked).await, ["refused panic"]);
        let after = submit(&commit, &store, &[("q", "q1")]).await;
        assert_eq!(answers(after).await, ["q1"], "the queue still works");
    }

    #[tokio::test]
    async fn a_batch_that_failed_after_reaching_the_database_is_not_stored_again() {
        let commit = Arc::new(GroupCommit::new(1, 64));
        let store = Recorder::new();
        let first = submit(&commit, &store, &[("z", "z1")]).await;
        // The database may have committed these: storing them again could store them twice.
        let undecodable = submit(&commit, &store, &[("a", "a1"), ("b", "undecodable")]).await;
        store.open();
        assert_eq!(answers(first).await, ["z1"]);
        assert_eq!(answers(undecodable).await, ["refused internal", "refused internal"]);
        let short = submit(&commit, &store, &[("c", "c1"), ("d", "short")]).await;
        assert_eq!(answers(short).await, ["refused internal", "refused internal"]);
        assert_eq!(store.batches()[1..], [vec!["a1", "undecodable"], vec!["c1", "short"]], "nothing stored one by one");
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let commit = Arc::new(GroupCommit::new(1, 2));
        let store = Recorder::new();
        let first = submit(&commit, &store, &[("z", "z1")]).await;
        let queued: Vec<(String, String)> = (0..commit.max_queued).map(|i| (format!("u{i}"), format!("m{i}"))).collect();
        let queued: Vec<(&str, &str)> = queued.iter().map(|(u, t)| (u.as_str(), t.as_str())).collect();
        let waiting = submit(&commit, &store, &queued).await;
        let refused = submit(&commit, &store, &[("x", "x1")]).await;
        assert_eq!(answers(refused).await, ["unavailable"], "past max_queued a message is refused at once");
        store.open();
        assert_eq!(answers(first).await, ["z1"]);
        assert_eq!(answers(waiting).await, queued.iter().map(|(_, t)| *t).collect::<Vec<_>>());
        assert!(store.batches().iter().flatten().all(|t| t != "x1"), "the refused one was not stored");
        assert_eq!(commit.lock().workers, 0);
    }

    #[tokio::test]
    async fn a_message_still_waiting_after_max_wait_is_taken_out_and_one_in_a_batch_is_waited_for() {
        // A short wait: the gate stays shut until the queued callers have been answered, so
        // only how long the test takes depends on it, not what it sees.
        let commit = Arc::new(GroupCommit { max_wait: Duration::from_millis(20), ..GroupCommit::new(1, 64) });
        let store = Recorder::new();
        let in_batch = submit(&commit, &store, &[("z", "z1")]).await;
        let late = submit(&commit, &store, &[("a", "a1"), ("b", "b1")]).await;
        assert_eq!(answers(late).await, ["unavailable", "unavailable"]);
        assert!(commit.lock().waiting.is_empty(), "taken out of the queue");
        store.open();
        assert_eq!(answers(in_batch).await, ["z1"], "its batch had it: answered after the commit");
        assert_eq!(store.batches(), [vec!["z1"]], "the late ones were not stored");
        assert_eq!(commit.lock().workers, 0);
    }
}
