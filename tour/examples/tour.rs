//! A tour of tannoy through the customer-service system it was built for.
//!
//! An ingestion service publishes customer messages to `conversations:new`.
//! A sentiment analyzer, an intent classifier and a context manager each
//! subscribe and work in parallel threads, publishing their results on
//! `ai:*` channels. A monitor `psubscribe`s `ai:*` and sees everything the
//! AI side says, including model-update and embedding-refresh invalidation
//! events, which also reach two cache workers. A deliberately slow archiver
//! shows drop-oldest: it loses the oldest messages, never blocks anyone, and
//! knows exactly what it lost. Introspection closes the tour.
//!
//! Run: `cargo run --release --example tour`

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use tannoy::{Broker, Message, MessageKind, Subscriber};

/// Customer messages the ingestion service receives: (customer, text).
const CONVERSATIONS: [(&str, &str); 8] = [
    ("alice", "My order #1042 never arrived and I'm really upset"),
    ("bob", "Thanks, the new dashboard is great!"),
    ("carol", "How do I reset my password?"),
    ("alice", "Any update on my refund? This is terrible service"),
    ("dave", "Can I upgrade my plan to the team tier?"),
    ("bob", "Also, is there an API for exports?"),
    ("erin", "I love the quick replies, thank you"),
    ("carol", "Password reset worked, thanks"),
];

/// Prints one line at a time from any thread, prefixed with who says it.
#[derive(Clone)]
struct Console(Arc<Mutex<()>>);

impl Console {
    fn say(&self, who: &str, what: impl AsRef<str>) {
        let _line = self.0.lock().unwrap();
        println!("  {who:<18} {}", what.as_ref());
    }
}

/// Splits a `customer|text` payload.
fn parse(msg: &Message) -> (String, String) {
    let text = String::from_utf8_lossy(msg.payload()).into_owned();
    match text.split_once('|') {
        Some((customer, body)) => (customer.to_owned(), body.to_owned()),
        None => (String::new(), text),
    }
}

/// A toy sentiment model: counts happy and unhappy words.
fn sentiment(text: &str) -> &'static str {
    let text = text.to_lowercase();
    let score = ["great", "love", "thank", "worked"]
        .iter()
        .filter(|w| text.contains(*w))
        .count() as i32
        - ["upset", "terrible", "never", "refund"]
            .iter()
            .filter(|w| text.contains(*w))
            .count() as i32;
    match score {
        s if s > 0 => "positive",
        0 => "neutral",
        _ => "negative",
    }
}

/// A toy intent classifier.
fn intent(text: &str) -> &'static str {
    let text = text.to_lowercase();
    if text.contains("order") || text.contains("refund") {
        "order-issue"
    } else if text.contains("password") {
        "account-access"
    } else if text.contains("plan") || text.contains("upgrade") || text.contains("api") {
        "sales"
    } else {
        "feedback"
    }
}

/// Spawns a worker thread that handles every message until the broker
/// closes, and returns how many it handled.
fn worker(
    name: &'static str,
    sub: Subscriber,
    mut handle: impl FnMut(&Message) + Send + 'static,
) -> thread::JoinHandle<(&'static str, usize)> {
    thread::spawn(move || {
        let mut handled = 0;
        for msg in sub.iter() {
            handle(&msg);
            handled += 1;
        }
        (name, handled)
    })
}

fn main() {
    let console = Console(Arc::new(Mutex::new(())));
    let broker = Broker::builder().queue_capacity(1024).build();

    println!("== tannoy tour: a customer-service system on one in-process broker ==\n");
    println!("Subscribing the components:");

    // The three analyzers all react to the same event, knowing nothing of
    // each other or of the ingestion service.
    let mut sentiment_sub = broker.subscriber();
    let mut intent_sub = broker.subscriber();
    let mut context_sub = broker.subscriber();
    for (name, sub) in [
        ("sentiment", &mut sentiment_sub),
        ("intent", &mut intent_sub),
        ("context", &mut context_sub),
    ] {
        let count = sub.subscribe(["conversations:new"]);
        console.say(
            name,
            format!("SUBSCRIBE conversations:new -> {count} subscription"),
        );
    }

    // The monitor sees everything the AI side publishes, through one pattern.
    let monitor_sub = broker.subscriber();
    monitor_sub.psubscribe(["ai:*"]);
    console.say("monitor", "PSUBSCRIBE ai:*");

    // Cache workers listen for invalidation events.
    let model_cache_sub = broker.subscriber();
    model_cache_sub.subscribe(["ai:models:updated"]);
    let embedding_cache_sub = broker.subscriber();
    embedding_cache_sub.subscribe(["ai:embeddings:refresh"]);
    console.say("model-cache", "SUBSCRIBE ai:models:updated");
    console.say("embedding-cache", "SUBSCRIBE ai:embeddings:refresh");

    // An archiver with a tiny queue that is too busy to read until the end.
    let archiver = broker.subscriber_builder().queue_capacity(3).build();
    archiver.subscribe(["conversations:new"]);
    console.say("archiver (slow)", "SUBSCRIBE conversations:new, queue of 3");

    println!("\nWorking (threads run in parallel, so lines interleave):");

    let out = console.clone();
    let results = broker.clone();
    let sentiment_worker = worker("sentiment", sentiment_sub, move |msg| {
        let (customer, text) = parse(msg);
        let verdict = sentiment(&text);
        out.say("sentiment", format!("{customer}: {verdict}"));
        results.publish("ai:sentiment:scored", format!("{customer}|{verdict}"));
    });

    let out = console.clone();
    let results = broker.clone();
    let intent_worker = worker("intent", intent_sub, move |msg| {
        let (customer, text) = parse(msg);
        let label = intent(&text);
        out.say("intent", format!("{customer}: {label}"));
        results.publish("ai:intent:classified", format!("{customer}|{label}"));
    });

    // The context manager keeps each customer's conversation history.
    let history: Arc<Mutex<HashMap<String, Vec<String>>>> = Arc::default();
    let context_history = Arc::clone(&history);
    let context_worker = worker("context", context_sub, move |msg| {
        let (customer, text) = parse(msg);
        context_history
            .lock()
            .unwrap()
            .entry(customer)
            .or_default()
            .push(text);
    });

    let out = console.clone();
    let monitor_worker = worker("monitor", monitor_sub, move |msg| {
        assert_eq!(msg.kind(), MessageKind::PMessage);
        out.say(
            "monitor",
            format!(
                "[{}] {}",
                String::from_utf8_lossy(msg.channel()),
                String::from_utf8_lossy(msg.payload())
            ),
        );
    });

    let out = console.clone();
    let model_cache_worker = worker("model-cache", model_cache_sub, move |msg| {
        out.say(
            "model-cache",
            format!(
                "invalidating cached completions for {}",
                String::from_utf8_lossy(msg.payload())
            ),
        );
    });

    let out = console.clone();
    let embedding_cache_worker = worker("embedding-cache", embedding_cache_sub, move |msg| {
        out.say(
            "embedding-cache",
            format!("re-embedding {}", String::from_utf8_lossy(msg.payload())),
        );
    });

    // The ingestion service publishes without knowing who listens.
    for (customer, text) in CONVERSATIONS {
        let receivers = broker.publish("conversations:new", format!("{customer}|{text}"));
        console.say(
            "ingestion",
            format!("PUBLISH conversations:new ({customer}) -> {receivers} receivers"),
        );
        thread::sleep(Duration::from_millis(15));
    }

    let receivers = broker.publish("ai:models:updated", "gpt-5:v2");
    console.say(
        "ops",
        format!("PUBLISH ai:models:updated gpt-5:v2 -> {receivers} receivers"),
    );
    let receivers = broker.publish("ai:embeddings:refresh", "kb-articles");
    console.say(
        "ops",
        format!("PUBLISH ai:embeddings:refresh kb-articles -> {receivers} receivers"),
    );
    thread::sleep(Duration::from_millis(100));

    // Introspection, as PUBSUB CHANNELS / NUMSUB / NUMPAT report it.
    println!("\nIntrospection:");
    let mut channels: Vec<String> = broker
        .channels(None)
        .iter()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    channels.sort();
    println!("  PUBSUB CHANNELS        {channels:?}");
    let mut ai: Vec<String> = broker
        .channels(Some("ai:*"))
        .iter()
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    ai.sort();
    println!("  PUBSUB CHANNELS ai:*   {ai:?}");
    for (channel, count) in broker.numsub([
        "conversations:new",
        "ai:models:updated",
        "ai:sentiment:scored",
    ]) {
        println!(
            "  PUBSUB NUMSUB {:<22} {count}",
            String::from_utf8_lossy(&channel)
        );
    }
    println!("  PUBSUB NUMPAT          {}", broker.numpat());
    println!("  (NUMSUB counts exact subscribers only; the monitor's pattern is not one)");

    // The slow archiver finally reads: drop-oldest kept the newest three,
    // and the sequence numbers show exactly what went missing.
    println!("\nThe slow archiver catches up (queue of 3, drop-oldest):");
    let mut expected = 0;
    for msg in archiver.try_iter() {
        if msg.seq() > expected {
            println!(
                "  archiver           ... {} message(s) lost before this one",
                msg.seq() - expected
            );
        }
        let (customer, text) = parse(&msg);
        println!("  archiver           #{} {customer}: {text}", msg.seq());
        expected = msg.seq() + 1;
    }
    println!(
        "  archiver           dropped() = {} of {} published; publishers never waited",
        archiver.dropped(),
        CONVERSATIONS.len()
    );
    drop(archiver);
    println!(
        "  after drop(archiver): NUMSUB conversations:new = {}",
        broker.numsub(["conversations:new"])[0].1
    );

    // Closing ends every worker's `for msg in sub.iter()` loop once its
    // queue is drained.
    broker.close();
    println!("\nShutting down (broker.close()):");
    for handle in [
        sentiment_worker,
        intent_worker,
        context_worker,
        monitor_worker,
        model_cache_worker,
        embedding_cache_worker,
    ] {
        let (name, handled) = handle.join().expect("worker panicked");
        println!("  {name:<18} handled {handled} message(s)");
    }

    println!("\nConversation context kept by the context manager:");
    let history = history.lock().unwrap();
    let mut customers: Vec<_> = history.keys().collect();
    customers.sort();
    for customer in customers {
        println!(
            "  {customer:<6} {} message(s): {:?}",
            history[customer].len(),
            history[customer]
        );
    }
}
