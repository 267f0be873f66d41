//! The optional glob of `PUBSUB CHANNELS`-style introspection.

use bytes::Bytes;

/// The optional glob accepted by [`Broker::channels`](crate::Broker::channels) and
/// [`Broker::shard_channels`](crate::Broker::shard_channels).
///
/// Implemented for `Option<&str>` (so both `None` and `Some("ai:*")` work)
/// and for plain names: `&str`, `String`, `&[u8]`, `&[u8; N]`, `Vec<u8>` and
/// [`Bytes`], which filter by that pattern. Use a plain byte string for a
/// binary pattern: `broker.channels(b"\x80*")`.
///
/// # Examples
///
/// ```
/// let broker = tannoy::Broker::new();
/// let sub = broker.subscriber();
/// sub.subscribe([b"\x80raw".as_slice(), b"text"]);
/// assert_eq!(broker.channels(None).len(), 2);
/// assert_eq!(broker.channels(Some("t*")), ["text"]);
/// assert_eq!(broker.channels(b"\x80*"), [b"\x80raw".as_slice()]);
/// ```
pub trait ChannelFilter: sealed::Sealed {
    /// The pattern's bytes, or `None` for no filter.
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

impl sealed::Sealed for Option<&str> {}
impl ChannelFilter for Option<&str> {
    fn pattern(&self) -> Option<&[u8]> {
        self.map(str::as_bytes)
    }
}
