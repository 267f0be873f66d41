//! The optional glob of `PUBSUB CHANNELS`-style introspection.

use bytes::Bytes;

/// The optional glob accepted by [`Broker::channels`](crate::Broker::channels) and
/// [`Broker::shard_channels`](crate::Broker::shard_channels).
///
/// Implemented for:
///
/// * `None` and `Some("ai:*")`: an `Option<&str>`;
/// * a reference to any optional byte string, `&Option<T>` where
///   `T: AsRef<[u8]>`: `&Option<&[u8]>`, `&Option<&[u8; N]>`,
///   `&Option<String>`, `&Option<&String>`, `&Option<Vec<u8>>`,
///   `&Option<Bytes>`, ...;
/// * a plain pattern, which always filters: `&str`, `String`, `&String`,
///   `&[u8]`, `&[u8; N]`, `Vec<u8>`, `&Vec<u8>`, [`Bytes`] and `&Bytes`.
///
/// An optional pattern held in a variable is passed by reference:
/// `broker.channels(&pattern)`. (By value, only `Option<&str>` is
/// accepted: with a second by-value `Option` type, a bare `None` would no
/// longer compile, since Rust could not tell which `Option` it is.)
///
/// # Examples
///
/// ```
/// use tannoy::Bytes;
///
/// let broker = tannoy::Broker::new();
/// let sub = broker.subscriber();
/// sub.subscribe([b"\x80raw".as_slice(), b"text"]);
/// assert_eq!(broker.channels(None).len(), 2);
/// assert_eq!(broker.channels(Some("t*")), ["text"]);
/// assert_eq!(broker.channels(b"\x80*"), [b"\x80raw".as_slice()]);
///
/// // An optional pattern from elsewhere, of any byte-string type.
/// let from_a_client: Option<Bytes> = Some(Bytes::from_static(b"\x80*"));
/// assert_eq!(broker.channels(&from_a_client), [b"\x80raw".as_slice()]);
/// let none: Option<Vec<u8>> = None;
/// assert_eq!(broker.channels(&none).len(), 2);
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a channel filter",
    label = "expected `None`, `Some(&str)`, a byte string, or a reference to an `Option` of one",
    note = "pass an optional pattern by reference: `broker.channels(&pattern)`"
)]
pub trait ChannelFilter: sealed::Sealed {
    /// The pattern's bytes, or `None` for no filter.
    ///
    /// # Examples
    ///
    /// ```
    /// use tannoy::ChannelFilter;
    ///
    /// assert_eq!(Some("ai:*").pattern(), Some(&b"ai:*"[..]));
    /// assert_eq!((&None::<Vec<u8>>).pattern(), None);
    /// ```
    fn pattern(&self) -> Option<&[u8]>;
}

/// Keeps [`ChannelFilter`] closed to new implementations, so more can be
/// added without breaking anyone.
mod sealed {
    pub trait Sealed {}
}

/// Implements [`ChannelFilter`] for owned and borrowed byte-string types.
macro_rules! channel_filter_for {
    ($($ty:ty),*) => {$(
        impl sealed::Sealed for $ty {}
        impl ChannelFilter for $ty {
            fn pattern(&self) -> Option<&[u8]> {
                Some(AsRef::<[u8]>::as_ref(self))
            }
        }
    )*};
}

channel_filter_for!(
    &str,
    String,
    &String,
    &[u8],
    Vec<u8>,
    &Vec<u8>,
    Bytes,
    &Bytes
);

impl<const N: usize> sealed::Sealed for &[u8; N] {}
impl<const N: usize> ChannelFilter for &[u8; N] {
    fn pattern(&self) -> Option<&[u8]> {
        Some(self.as_slice())
    }
}

// The only by-value `Option`: a bare `None` infers to it.
impl sealed::Sealed for Option<&str> {}
impl ChannelFilter for Option<&str> {
    fn pattern(&self) -> Option<&[u8]> {
        self.map(str::as_bytes)
    }
}

impl<T: AsRef<[u8]>> sealed::Sealed for &Option<T> {}
impl<T: AsRef<[u8]>> ChannelFilter for &Option<T> {
    fn pattern(&self) -> Option<&[u8]> {
        self.as_ref().map(AsRef::as_ref)
    }
}
