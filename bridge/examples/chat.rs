//! A process that joins a shared Redis through a bridge: it subscribes
//! locally, prints what arrives from every process, and publishes what you
//! type.
//!
//! ```sh
//! redis-server --port 6379 &
//! cargo run -p tannoy-redis --example chat -- redis://127.0.0.1:6379 room:1 'room:*'
//! # in another terminal, the same command; then type `room:1 hello` in either
//! ```
//!
//! Arguments: the server's URL, then names to subscribe to (a name with
//! `*`, `?` or `[` is a pattern). Each stdin line `channel payload`
//! publishes `payload` to `channel` through the server. Output: `ready`
//! once subscribed upstream, then one line per message (`message channel
//! payload`, `pmessage pattern channel payload`, `gap N` after an outage)
//! and `published N` per publish. End of input shuts the bridge down.

use std::error::Error;

use tannoy::MessageKind;
use tannoy_redis::{Bridge, GAP_CHANNEL};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: chat REDIS_URL [CHANNEL|PATTERN]...")?;
    let broker = tannoy::Broker::new();
    let bridge = Bridge::builder()
        .url(url)
        .broker(broker.clone())
        .start()
        .await?;

    let mut sub = broker.subscriber();
    sub.subscribe([GAP_CHANNEL]);
    for name in args {
        if name.contains(['*', '?', '[']) {
            sub.psubscribe([name]);
        } else {
            sub.subscribe([name]);
        }
    }
    bridge.sync().await?;
    println!("ready");

    let printer = tokio::spawn(async move {
        while let Ok(msg) = sub.recv_async().await {
            let text = |b: &tannoy::Bytes| String::from_utf8_lossy(b).into_owned();
            match msg.kind() {
                _ if msg.channel() == GAP_CHANNEL => println!("gap {}", text(msg.payload())),
                MessageKind::PMessage => println!(
                    "pmessage {} {} {}",
                    msg.pattern().map(text).unwrap_or_default(),
                    text(msg.channel()),
                    text(msg.payload())
                ),
                kind => println!("{kind} {} {}", text(msg.channel()), text(msg.payload())),
            }
        }
    });

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let (channel, payload) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        match bridge.publish(channel, payload).await {
            Ok(count) => println!("published {count}"),
            Err(e) => println!("error {e}"),
        }
    }
    bridge.shutdown().await;
    broker.close();
    printer.await?;
    Ok(())
}
