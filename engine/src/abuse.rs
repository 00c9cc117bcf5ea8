//! Abuse limits: login attempts per IP and per username (token buckets, plus exponential
//! backoff after consecutive failures), messages per second per user and per conversation
//! (token buckets), open connections per IP, registrations per IP.
//!
//! Ownership: one [`Limiter`] in `Shared`, used from every core. Its maps sit behind
//! mutexes sharded by key hash; logins, registrations and accepts are rare next to
//! messages, and a user's sends all come from its home core, so the locks are short and
//! rarely contended. Every map is bounded ([`LIMITER_ENTRIES_MAX`] per shard): at the bound
//! idle entries are pruned, and if none can be, the request is refused (fail closed) and
//! counted like any other hit. A limit set to [`LIMIT_OFF`] is not enforced.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A limit value that turns the limit off.
pub const LIMIT_OFF: u32 = 0;
/// Consecutive login failures (per username, and per IP) allowed before backoff starts.
pub const LOGIN_FAILURES_FREE: u32 = 3;
/// The first backoff after [`LOGIN_FAILURES_FREE`] failures; it doubles per failure.
pub const LOGIN_BACKOFF_MS_FIRST: u64 = 250;
/// Most entries one shard of one map holds.
pub const LIMITER_ENTRIES_MAX: usize = 1 << 16;
/// Shards per map.
const SHARDS: usize = 16;

/// The limits, each a config value (`hotline serve --help` names the flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbuseLimits {
    /// Login attempts one IP may make per minute (token bucket, burst the same).
    pub login_attempts_per_ip_per_minute: u32,
    /// Login attempts per username per minute, from anywhere.
    pub login_attempts_per_username_per_minute: u32,
    /// Longest backoff after repeated login failures.
    pub login_backoff_ms_max: u32,
    /// Messages one user may send per second (all its devices; burst the same).
    pub messages_per_user_per_second: u32,
    /// Messages per second into one conversation (a direct pair, or a group), all senders.
    pub messages_per_conversation_per_second: u32,
    /// Connections open at once from one IP.
    pub connections_per_ip_max: u32,
    /// Registrations one IP may attempt per hour (burst the same).
    pub registrations_per_ip_per_hour: u32,
}

impl Default for AbuseLimits {
    fn default() -> Self {
        AbuseLimits {
            login_attempts_per_ip_per_minute: 600,
            login_attempts_per_username_per_minute: 60,
            login_backoff_ms_max: 30_000,
            messages_per_user_per_second: 1_000,
            messages_per_conversation_per_second: 5_000,
            connections_per_ip_max: 20_000,
            registrations_per_ip_per_hour: 1_000,
        }
    }
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    LoginPerIp,
    LoginPerUsername,
    MessagesPerUser,
    MessagesPerConversation,
    ConnectionsPerIp,
    RegistrationsPerIp,
}

impl Limit {
    /// Every limit, in the order metrics list them.
    pub const ALL: [Limit; 6] = [
        Limit::LoginPerIp,
        Limit::LoginPerUsername,
        Limit::MessagesPerUser,
        Limit::MessagesPerConversation,
        Limit::ConnectionsPerIp,
        Limit::RegistrationsPerIp,
    ];

    /// The metric label (`hotline_rate_limited_total{limit=...}`).
    pub fn name(self) -> &'static str {
        match self {
            Limit::LoginPerIp => "login_per_ip",
            Limit::LoginPerUsername => "login_per_username",
            Limit::MessagesPerUser => "messages_per_user",
            Limit::MessagesPerConversation => "messages_per_conversation",
            Limit::ConnectionsPerIp => "connections_per_ip",
            Limit::RegistrationsPerIp => "registrations_per_ip",
        }
    }

    /// The `Error.message` text.
    pub fn describe(self) -> &'static str {
        match self {
            Limit::LoginPerIp => "too many login attempts from your address",
            Limit::LoginPerUsername => "too many login attempts for this username",
            Limit::MessagesPerUser => "too many messages per second from this user",
            Limit::MessagesPerConversation => "too many messages per second in this conversation",
            Limit::ConnectionsPerIp => "too many connections from your address",
            Limit::RegistrationsPerIp => "too many registrations from your address",
        }
    }
}

/// A refusal: which limit, and when trying again may succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub limit: Limit,
    pub retry_after_ms: u32,
}

/// A token bucket holding at most `capacity` tokens, refilled at `capacity / period`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(capacity: u32, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(capacity),
            last: now,
        }
    }

    fn refill(&mut self, capacity: u32, period: Duration, now: Instant) {
        let rate = f64::from(capacity) / period.as_secs_f64();
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(capacity));
        self.last = now;
    }

    /// Takes one token, or says in how many ms one will be there.
    fn take(&mut self, capacity: u32, period: Duration, now: Instant) -> Result<(), u32> {
        self.refill(capacity, period, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let rate = f64::from(capacity) / period.as_secs_f64();
        Err((((1.0 - self.tokens) / rate) * 1000.0).ceil().max(1.0) as u32)
    }

    fn is_full(&self, capacity: u32, period: Duration, now: Instant) -> bool {
        let mut b = *self;
        b.refill(capacity, period, now);
        b.tokens >= f64::from(capacity)
    }
}

/// Login state of one IP or one username.
#[derive(Debug, Clone, Copy)]
struct LoginState {
    attempts: Bucket,
    failures: u32,
    blocked_until: Option<Instant>,
}

impl LoginState {
    fn check(&mut self, capacity: u32, now: Instant) -> Result<(), u32> {
        if let Some(until) = self.blocked_until {
            if now < until {
                return Err(until.duration_since(now).as_millis().max(1) as u32);
            }
        }
        if capacity == LIMIT_OFF {
            return Ok(());
        }
        self.attempts.take(capacity, MINUTE, now)
    }

    fn failed(&mut self, backoff_ms_max: u32, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        if self.failures > LOGIN_FAILURES_FREE {
            let doublings = (self.failures - LOGIN_FAILURES_FREE - 1).min(20);
            let ms = (LOGIN_BACKOFF_MS_FIRST << doublings).min(u64::from(backoff_ms_max));
            self.blocked_until = Some(now + Duration::from_millis(ms));
        }
    }

    fn idle(&self, capacity: u32, now: Instant) -> bool {
        self.failures == 0 && (capacity == LIMIT_OFF || self.attempts.is_full(capacity, MINUTE, now))
    }
}

/// What the limiter keeps per IP.
#[derive(Debug, Clone, Copy)]
struct IpState {
    connections: u32,
    login: LoginState,
    registrations: Bucket,
}

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3_600);
const SECOND: Duration = Duration::from_secs(1);

/// A map sharded by key hash, each shard bounded.
#[derive(Debug)]
struct Sharded<K, V> {
    shards: Vec<Mutex<HashMap<K, V>>>,
}

impl<K: Hash + Eq, V> Sharded<K, V> {
    fn new() -> Self {
        Sharded {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, key: &K) -> MutexGuard<'_, HashMap<K, V>> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        let i = (h.finish() as usize) % SHARDS;
        // A panic while holding the lock is a bug that already crashed the process.
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Gets `key`'s entry, pruning idle entries at the bound; `None` if the shard is full of
/// live entries.
fn entry<'a, K: Hash + Eq + Clone, V>(
    map: &'a mut HashMap<K, V>,
    key: &K,
    fresh: impl FnOnce() -> V,
    idle: impl Fn(&V) -> bool,
) -> Option<&'a mut V> {
    if !map.contains_key(key) {
        if map.len() >= LIMITER_ENTRIES_MAX {
            map.retain(|_, v| !idle(v));
        }
        if map.len() >= LIMITER_ENTRIES_MAX {
            return None;
        }
        map.insert(key.clone(), fresh());
    }
    map.get_mut(key)
}

/// The abuse limiter (see the module doc).
#[derive(Debug)]
pub struct Limiter {
    limits: AbuseLimits,
    ips: Sharded<IpAddr, IpState>,
    usernames: Sharded<Box<str>, LoginState>,
    users: Sharded<u64, Bucket>,
    /// Key: (0, lower user id, higher user id) for a direct pair; (1, group id, 0).
    conversations: Sharded<(u8, u64, u64), Bucket>,
}

/// An open connection's place in its IP's count; dropping it frees the place.
#[derive(Debug)]
pub struct IpSlot {
    limiter: Arc<Limiter>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut map = self.limiter.ips.shard(&self.ip);
        if let Some(state) = map.get_mut(&self.ip) {
            state.connections = state.connections.saturating_sub(1);
        }
    }
}

impl Limiter {
    pub fn new(limits: AbuseLimits) -> Limiter {
        Limiter {
            limits,
            ips: Sharded::new(),
            usernames: Sharded::new(),
            users: Sharded::new(),
            conversations: Sharded::new(),
        }
    }

    pub fn limits(&self) -> &AbuseLimits {
        &self.limits
    }

    fn ip_fresh(&self, now: Instant) -> IpState {
        IpState {
            connections: 0,
            login: LoginState {
                attempts: Bucket::full(self.limits.login_attempts_per_ip_per_minute, now),
                failures: 0,
                blocked_until: None,
            },
            registrations: Bucket::full(self.limits.registrations_per_ip_per_hour, now),
        }
    }

    fn ip_idle(&self, s: &IpState, now: Instant) -> bool {
        s.connections == 0
            && s.login.idle(self.limits.login_attempts_per_ip_per_minute, now)
            && (self.limits.registrations_per_ip_per_hour == LIMIT_OFF
                || s.registrations
                    .is_full(self.limits.registrations_per_ip_per_hour, HOUR, now))
    }

    /// A new connection from `ip`: its slot, or the refusal.
    pub fn connection_opened(self: &Arc<Self>, ip: IpAddr) -> Result<IpSlot, Refused> {
        let now = Instant::now();
        let refused = Refused {
            limit: Limit::ConnectionsPerIp,
            retry_after_ms: 1_000,
        };
        let mut map = self.ips.shard(&ip);
        let state = entry(&mut map, &ip, || self.ip_fresh(now), |s| self.ip_idle(s, now)).ok_or(refused)?;
        let max = self.limits.connections_per_ip_max;
        if max != LIMIT_OFF && state.connections >= max {
            return Err(refused);
        }
        state.connections += 1;
        Ok(IpSlot {
            limiter: Arc::clone(self),
            ip,
        })
    }

    /// A login attempt from `ip` (for `username` when it is a password login).
    pub fn login_attempt(&self, ip: Option<IpAddr>, username: Option<&str>) -> Result<(), Refused> {
        let now = Instant::now();
        if let Some(ip) = ip {
            let mut map = self.ips.shard(&ip);
            let refused = |retry_after_ms| Refused {
                limit: Limit::LoginPerIp,
                retry_after_ms,
            };
            let state = entry(&mut map, &ip, || self.ip_fresh(now), |s| self.ip_idle(s, now)).ok_or(refused(1_000))?;
            state
                .login
                .check(self.limits.login_attempts_per_ip_per_minute, now)
                .map_err(refused)?;
        }
        if let Some(name) = username {
            let key: Box<str> = name.into();
            let capacity = self.limits.login_attempts_per_username_per_minute;
            let mut map = self.usernames.shard(&key);
            let refused = |retry_after_ms| Refused {
                limit: Limit::LoginPerUsername,
                retry_after_ms,
            };
            let fresh = || LoginState {
                attempts: Bucket::full(capacity, now),
                failures: 0,
                blocked_until: None,
            };
            let state = entry(&mut map, &key, fresh, |s| s.idle(capacity, now)).ok_or(refused(1_000))?;
            state.check(capacity, now).map_err(refused)?;
        }
        Ok(())
    }

    /// A login attempt's outcome: failures start the backoff, a success clears it.
    pub fn login_finished(&self, ip: Option<IpAddr>, username: Option<&str>, ok: bool) {
        let now = Instant::now();
        let backoff_max = self.limits.login_backoff_ms_max;
        if let Some(ip) = ip {
            if let Some(state) = self.ips.shard(&ip).get_mut(&ip) {
                if ok {
                    state.login.failures = 0;
                    state.login.blocked_until = None;
                } else {
                    state.login.failed(backoff_max, now);
                }
            }
        }
        if let Some(name) = username {
            let key: Box<str> = name.into();
            if let Some(state) = self.usernames.shard(&key).get_mut(&key) {
                if ok {
                    state.failures = 0;
                    state.blocked_until = None;
                } else {
                    state.failed(backoff_max, now);
                }
            }
        }
    }

    /// A registration attempt from `ip`.
    pub fn registration_attempt(&self, ip: Option<IpAddr>) -> Result<(), Refused> {
        let capacity = self.limits.registrations_per_ip_per_hour;
        let (Some(ip), false) = (ip, capacity == LIMIT_OFF) else {
            return Ok(());
        };
        let now = Instant::now();
        let refused = |retry_after_ms| Refused {
            limit: Limit::RegistrationsPerIp,
            retry_after_ms,
        };
        let mut map = self.ips.shard(&ip);
        let state = entry(&mut map, &ip, || self.ip_fresh(now), |s| self.ip_idle(s, now)).ok_or(refused(1_000))?;
        state.registrations.take(capacity, HOUR, now).map_err(refused)
    }

    /// A message from `user` into a direct conversation with `to`, or into `group`.
    pub fn message(&self, user: u64, to: u64, group: u64) -> Result<(), Refused> {
        let now = Instant::now();
        let per_user = self.limits.messages_per_user_per_second;
        if per_user != LIMIT_OFF {
            let refused = |retry_after_ms| Refused {
                limit: Limit::MessagesPerUser,
                retry_after_ms,
            };
            let mut map = self.users.shard(&user);
            let b = entry(
                &mut map,
                &user,
                || Bucket::full(per_user, now),
                |b| b.is_full(per_user, SECOND, now),
            )
            .ok_or(refused(1_000))?;
            b.take(per_user, SECOND, now).map_err(refused)?;
        }
        let per_conv = self.limits.messages_per_conversation_per_second;
        if per_conv != LIMIT_OFF {
            let key = if group != 0 {
                (1, group, 0)
            } else {
                (0, user.min(to), user.max(to))
            };
            let refused = |retry_after_ms| Refused {
                limit: Limit::MessagesPerConversation,
                retry_after_ms,
            };
            let mut map = self.conversations.shard(&key);
            let b = entry(
                &mut map,
                &key,
                || Bucket::full(per_conv, now),
                |b| b.is_full(per_conv, SECOND, now),
            )
            .ok_or(refused(1_000))?;
            b.take(per_conv, SECOND, now).map_err(refused)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(limits: AbuseLimits) -> Arc<Limiter> {
        Arc::new(Limiter::new(limits))
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn connection_slots_are_counted_and_freed_on_drop() {
        let l = limiter(AbuseLimits {
            connections_per_ip_max: 2,
            ..AbuseLimits::default()
        });
        let a = l.connection_opened(IP).expect("first");
        let _b = l.connection_opened(IP).expect("second");
        assert_eq!(
            l.connection_opened(IP).map(|_| ()).unwrap_err().limit,
            Limit::ConnectionsPerIp
        );
        drop(a);
        assert!(l.connection_opened(IP).is_ok(), "a dropped slot frees its place");
    }

    #[test]
    fn login_failures_back_off_exponentially_and_a_success_clears_them() {
        let l = limiter(AbuseLimits::default());
        for _ in 0..LOGIN_FAILURES_FREE {
            l.login_attempt(Some(IP), Some("alice")).expect("free attempts");
            l.login_finished(Some(IP), Some("alice"), false);
        }
        l.login_attempt(Some(IP), Some("alice"))
            .expect("the 4th attempt is allowed");
        l.login_finished(Some(IP), Some("alice"), false);
        let refused = l.login_attempt(Some(IP), Some("alice")).unwrap_err();
        assert!(refused.retry_after_ms > 0 && u64::from(refused.retry_after_ms) <= LOGIN_BACKOFF_MS_FIRST);
        std::thread::sleep(Duration::from_millis(LOGIN_BACKOFF_MS_FIRST + 10));
        l.login_attempt(Some(IP), Some("alice")).expect("after the backoff");
        l.login_finished(Some(IP), Some("alice"), true);
        l.login_attempt(Some(IP), Some("alice"))
            .expect("a success clears the backoff");
    }

    #[test]
    fn message_buckets_refuse_past_the_rate_and_name_the_limit() {
        let l = limiter(AbuseLimits {
            messages_per_user_per_second: 5,
            messages_per_conversation_per_second: 8,
            ..AbuseLimits::default()
        });
        for _ in 0..5 {
            l.message(1, 2, 0).expect("within the user's burst");
        }
        assert_eq!(l.message(1, 2, 0).unwrap_err().limit, Limit::MessagesPerUser);
        for _ in 0..3 {
            l.message(2, 1, 0).expect("the other side of the pair");
        }
        assert_eq!(l.message(2, 1, 0).unwrap_err().limit, Limit::MessagesPerConversation);
        l.message(3, 4, 0).expect("another conversation is not affected");
    }
}
