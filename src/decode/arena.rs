//! Where a zero-copy decoder's strings are: most borrow the message; text the decoder had to
//! make (unescaped, made valid, composed) goes to an [`Arena`], a buffer reused from message to
//! message. Ranges ([`At`]) are recorded while reading, and turned into `&str` once the
//! message is read and the arena no longer grows.

/// Where a decoded string is: a byte range of the message, or of the [`Arena`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum At {
    Msg(u32, u32),
    Arena(u32, u32),
}

impl At {
    /// The empty string.
    pub const EMPTY: At = At::Arena(0, 0);

    pub fn is_empty(self) -> bool {
        matches!(self, At::Msg(a, b) | At::Arena(a, b) if a == b)
    }
}

/// Text made while decoding one message.
#[derive(Debug, Default)]
pub(crate) struct Arena(String);

impl Arena {
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// Appends `s`; where it is.
    pub fn keep(&mut self, s: &str) -> At {
        let a = self.0.len();
        self.0.push_str(s);
        At::Arena(a as u32, self.0.len() as u32)
    }

    /// The string at `at` of a message that is text as a whole (Influx line protocol).
    pub fn text<'a>(&'a self, msg: &'a str, at: At) -> &'a str {
        match at {
            At::Msg(a, b) => msg.get(a as usize..b as usize).unwrap_or(""),
            At::Arena(a, b) => &self.0[a as usize..b as usize],
        }
    }

    /// The string at `at` of a binary message whose string ranges were checked to be UTF-8
    /// when they were read (protobuf).
    pub fn str<'a>(&'a self, msg: &'a [u8], at: At) -> &'a str {
        match at {
            At::Msg(a, b) => msg
                .get(a as usize..b as usize)
                .and_then(|s| std::str::from_utf8(s).ok())
                .unwrap_or(""),
            At::Arena(a, b) => &self.0[a as usize..b as usize],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_from_the_message_or_the_arena() {
        let mut a = Arena::default();
        let made = a.keep("cpu_usage");
        assert_eq!(a.text("host=web", At::Msg(5, 8)), "web");
        assert_eq!(a.text("host=web", made), "cpu_usage");
        assert_eq!(a.str(b"\x0ahost", At::Msg(1, 5)), "host");
        assert!(At::EMPTY.is_empty() && At::Msg(3, 3).is_empty() && !made.is_empty());
        a.clear();
        assert_eq!(a.keep("x"), At::Arena(0, 1));
    }
}
