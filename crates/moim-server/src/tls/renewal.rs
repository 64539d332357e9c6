//! When to ask the CA for a certificate, from the one held and the time
//! given. No IO, no clock: the ACME task and the tests pass `now`.

use std::time::{Duration, SystemTime};

/// A certificate's validity window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Validity {
    /// Read from a DER certificate.
    pub fn of(der: &[u8]) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let at =
            |t: i64| Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(t).ok()?));
        let v = cert.validity();
        Some(Self {
            not_before: at(v.not_before.timestamp())?,
            not_after: at(v.not_after.timestamp())?,
        })
    }

    /// Two thirds into the window, as Let's Encrypt advises: a 90-day
    /// certificate is renewed with 30 days left, so a CA outage of weeks
    /// still leaves time.
    pub fn renew_at(&self) -> SystemTime {
        let life = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or_default();
        self.not_before + life * 2 / 3
    }
}

/// What the ACME task does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Order a certificate now.
    Order,
    /// Sleep until then, then ask again.
    WaitUntil(SystemTime),
}

/// The first retry after a failed order; each further failure doubles it.
pub const FIRST_RETRY: Duration = Duration::from_secs(10);
/// The longest wait between retries. Let's Encrypt allows 5 failed
/// validations per host name an hour.
pub const LONGEST_RETRY: Duration = Duration::from_secs(3600);

/// `held` is the certificate being served, `failures` the orders that
/// failed since the last success, `last_failure` when the latest did.
pub fn next(
    held: Option<Validity>,
    failures: u32,
    last_failure: Option<SystemTime>,
    now: SystemTime,
) -> Next {
    let due = match held {
        // A held certificate that is not yet due is kept, failures or not.
        Some(v) if now < v.renew_at() => return Next::WaitUntil(v.renew_at()),
        _ => now,
    };
    match (failures, last_failure) {
        (0, _) | (_, None) => Next::Order,
        (n, Some(at)) => {
            let backoff = FIRST_RETRY
                .saturating_mul(1 << n.saturating_sub(1).min(16))
                .min(LONGEST_RETRY);
            let retry = at + backoff;
            if retry <= due {
                Next::Order
            } else {
                Next::WaitUntil(retry)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86400);

    fn lets_encrypt_cert(issued: SystemTime) -> Validity {
        Validity {
            not_before: issued,
            not_after: issued + 90 * DAY,
        }
    }

    #[test]
    fn a_ninety_day_certificate_is_renewed_with_thirty_days_left() {
        let t0 = SystemTime::UNIX_EPOCH + 1000 * DAY;
        let cert = lets_encrypt_cert(t0);
        assert_eq!(
            next(Some(cert), 0, None, t0),
            Next::WaitUntil(t0 + 60 * DAY)
        );
        assert_eq!(next(Some(cert), 0, None, t0 + 60 * DAY), Next::Order);
        assert_eq!(next(Some(cert), 0, None, t0 + 89 * DAY), Next::Order);
    }

    #[test]
    fn with_no_certificate_the_first_order_goes_out_at_once() {
        let now = SystemTime::UNIX_EPOCH + 5 * DAY;
        assert_eq!(next(None, 0, None, now), Next::Order);
    }

    #[test]
    fn failed_orders_back_off_from_ten_seconds_to_an_hour() {
        let t = SystemTime::UNIX_EPOCH + 5 * DAY;
        let waits: Vec<Duration> = (1..=12)
            .map(|n| match next(None, n, Some(t), t) {
                Next::WaitUntil(at) => at.duration_since(t).expect("later"),
                Next::Order => Duration::ZERO,
            })
            .collect();
        assert_eq!(waits[0], FIRST_RETRY);
        assert_eq!(waits[1], FIRST_RETRY * 2);
        assert_eq!(waits[2], FIRST_RETRY * 4);
        assert_eq!(*waits.last().expect("some"), LONGEST_RETRY);
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
        // Once the wait has passed, the next order goes out.
        assert_eq!(next(None, 3, Some(t), t + FIRST_RETRY * 4), Next::Order);
    }

    #[test]
    fn a_certificate_not_yet_due_is_kept_through_earlier_failures() {
        let t0 = SystemTime::UNIX_EPOCH + 1000 * DAY;
        let cert = lets_encrypt_cert(t0);
        assert_eq!(
            next(Some(cert), 4, Some(t0), t0 + DAY),
            Next::WaitUntil(t0 + 60 * DAY)
        );
    }

    #[test]
    fn a_short_lived_certificate_is_renewed_two_thirds_in() {
        let t0 = SystemTime::UNIX_EPOCH + 1000 * DAY;
        let cert = Validity {
            not_before: t0,
            not_after: t0 + Duration::from_secs(30),
        };
        assert_eq!(cert.renew_at(), t0 + Duration::from_secs(20));
    }

    #[test]
    fn validity_is_read_from_a_real_certificate() {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(vec!["a.test".to_string()]).expect("params");
        params.not_before = rcgen::date_time_ymd(2030, 1, 1);
        params.not_after = rcgen::date_time_ymd(2030, 4, 1);
        let cert = params.self_signed(&key).expect("cert");
        let v = Validity::of(cert.der()).expect("parsed");
        assert_eq!(
            v.not_after.duration_since(v.not_before).expect("ordered"),
            90 * DAY
        );
        assert_eq!(Validity::of(b"not a certificate"), None);
    }
}
