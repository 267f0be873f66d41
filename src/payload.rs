//! What `publish` accepts as a payload: [`IntoPayload`].

use std::borrow::Cow;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

/// A value [`Broker::publish`](crate::Broker::publish) and
/// [`spublish`](crate::Broker::spublish) accept as a `P` payload.
///
/// Every `P` is accepted as itself, moved and never copied: publishing a
/// [`Bytes`] into a `Broker<Bytes>` shares its buffer, and publishing an
/// `Arc<Event>` into a `Broker<Arc<Event>>` moves the `Arc`. Besides that,
/// the common borrowed and owned forms of the standard payload types are
/// converted:
///
/// | payload type `P` | also accepts |
/// |---|---|
/// | [`Bytes`] | `&str`, `&String`, `&[u8]`, `&[u8; N]`, `&Vec<u8>`, `&Bytes` (copied, except `&Bytes`, which shares the buffer); `String`, `Vec<u8>`, `Box<[u8]>`, `Box<str>`, `BytesMut` (moved without a copy); `Cow<[u8]>`, `Cow<str>` |
/// | `String` | `&str`, `&String`, `&mut str`, `Box<str>`, `Cow<str>`, `char` |
/// | `Vec<u8>` | `&[u8]`, `&[u8; N]`, `[u8; N]`, `&Vec<u8>`, `&str`, `String`, `Box<[u8]>`, `Cow<[u8]>` |
/// | `Arc<T>`, `Box<T>` | `T` (wrapped) |
/// | `Arc<str>` | `&str`, `String` |
/// | `Arc<[u8]>` | `&[u8]`, `Vec<u8>` |
///
/// Borrowed data is copied into a fresh buffer, so it may be a temporary:
/// `broker.publish("c", line.as_str())` works wherever `line` lives. A
/// string literal is copied too (a small allocation per publish); publish
/// `Bytes::from_static("...")` to share a literal without one.
///
/// For another payload type, publish the `P` itself, or implement
/// `IntoPayload<YourPayload>` for the types you want to publish as one.
/// (A blanket conversion from every `T: Into<P>` would forbid the borrowed
/// forms above: `&'static [u8]` is already `Into<Bytes>`.)
///
/// # Examples
///
/// ```
/// use tannoy::Bytes;
///
/// let broker = tannoy::Broker::new();
/// let sub = broker.subscriber();
/// sub.subscribe(["log"]);
///
/// let line = String::from("disk full");
/// broker.publish("log", line.as_str());         // copied
/// broker.publish("log", &line);                 // copied
/// let buf = vec![0u8, 159, 146, 150];
/// broker.publish("log", &buf[..]);              // copied
/// let shared = Bytes::from(buf);
/// broker.publish("log", shared.clone());        // shares the buffer
///
/// assert_eq!(sub.len(), 4);
/// let payloads: Vec<Bytes> = sub.try_iter().map(|m| m.into_payload()).collect();
/// assert_eq!(payloads[3].as_ptr(), shared.as_ptr());
/// ```
///
/// Your own payload type accepts whatever you implement:
///
/// ```
/// use tannoy::{BrokerBuilder, IntoPayload};
///
/// #[derive(Clone, Debug, PartialEq)]
/// struct Event { name: String }
///
/// impl IntoPayload<Event> for &str {
///     fn into_payload(self) -> Event {
///         Event { name: self.to_owned() }
///     }
/// }
///
/// let broker = BrokerBuilder::<Event>::new().build();
/// let sub = broker.subscriber();
/// sub.subscribe(["events"]);
/// broker.publish("events", "started");
/// broker.publish("events", Event { name: "stopped".into() });
/// assert_eq!(sub.try_recv()?.payload().name, "started");
/// assert_eq!(sub.try_recv()?.payload().name, "stopped");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait IntoPayload<P> {
    /// Converts `self` into the payload that is published.
    ///
    /// # Examples
    ///
    /// ```
    /// use tannoy::{Bytes, IntoPayload};
    ///
    /// let payload: Bytes = "hello".into_payload();
    /// assert_eq!(payload, "hello");
    /// ```
    fn into_payload(self) -> P;
}

impl<P> IntoPayload<P> for P {
    #[inline]
    fn into_payload(self) -> P {
        self
    }
}

/// Implements [`IntoPayload`] for the listed conversions through `From`.
macro_rules! into_payload_via_from {
    ($target:ty: $($source:ty),* $(,)?) => {$(
        impl IntoPayload<$target> for $source {
            #[inline]
            fn into_payload(self) -> $target {
                <$target>::from(self)
            }
        }
    )*};
}

/// Implements [`IntoPayload`] for the listed borrowed byte strings by
/// copying them.
macro_rules! into_bytes_by_copy {
    ($($source:ty),* $(,)?) => {$(
        impl IntoPayload<Bytes> for $source {
            #[inline]
            fn into_payload(self) -> Bytes {
                Bytes::copy_from_slice(AsRef::<[u8]>::as_ref(self))
            }
        }
    )*};
}

into_bytes_by_copy!(&str, &String, &[u8], &Vec<u8>);
into_payload_via_from!(Bytes: String, Vec<u8>, Box<[u8]>);

impl<const N: usize> IntoPayload<Bytes> for &[u8; N] {
    #[inline]
    fn into_payload(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

impl IntoPayload<Bytes> for &Bytes {
    /// Shares the buffer: cloning `Bytes` copies no data.
    #[inline]
    fn into_payload(self) -> Bytes {
        self.clone()
    }
}

impl IntoPayload<Bytes> for Box<str> {
    #[inline]
    fn into_payload(self) -> Bytes {
        Bytes::from(self.into_boxed_bytes())
    }
}

impl IntoPayload<Bytes> for BytesMut {
    #[inline]
    fn into_payload(self) -> Bytes {
        self.freeze()
    }
}

impl IntoPayload<Bytes> for Cow<'_, [u8]> {
    #[inline]
    fn into_payload(self) -> Bytes {
        match self {
            Cow::Borrowed(slice) => Bytes::copy_from_slice(slice),
            Cow::Owned(vec) => Bytes::from(vec),
        }
    }
}

impl IntoPayload<Bytes> for Cow<'_, str> {
    #[inline]
    fn into_payload(self) -> Bytes {
        match self {
            Cow::Borrowed(s) => Bytes::copy_from_slice(s.as_bytes()),
            Cow::Owned(s) => Bytes::from(s),
        }
    }
}

into_payload_via_from!(String: &str, &String, &mut str, Box<str>, Cow<'_, str>, char);
into_payload_via_from!(Vec<u8>: &[u8], &str, String, Box<[u8]>, Cow<'_, [u8]>);

impl<const N: usize> IntoPayload<Vec<u8>> for &[u8; N] {
    #[inline]
    fn into_payload(self) -> Vec<u8> {
        self.to_vec()
    }
}

impl<const N: usize> IntoPayload<Vec<u8>> for [u8; N] {
    #[inline]
    fn into_payload(self) -> Vec<u8> {
        Vec::from(self)
    }
}

impl IntoPayload<Vec<u8>> for &Vec<u8> {
    #[inline]
    fn into_payload(self) -> Vec<u8> {
        self.clone()
    }
}

impl<T> IntoPayload<Arc<T>> for T {
    #[inline]
    fn into_payload(self) -> Arc<T> {
        Arc::new(self)
    }
}

impl<T> IntoPayload<Box<T>> for T {
    #[inline]
    fn into_payload(self) -> Box<T> {
        Box::new(self)
    }
}

into_payload_via_from!(Arc<str>: &str, String);
into_payload_via_from!(Arc<[u8]>: &[u8], Vec<u8>);
