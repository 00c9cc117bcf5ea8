//! Session bodies: the handshake, accounts, login, liveness and errors (the engine's
//! `handlers/session.rs`). `Logout`, `LogoutOk` have no fields and no type here.

use flatbuffers::{UnionWIPOffset, WIPOffset};

use super::{present, required, Body, Builder, DeliverOffsets};
use crate::fb;
use crate::frame::FrameError;
use crate::limits::Limits;

/// Client → server, first frame: the protocol versions the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello<'a> {
    pub version_min: u16,
    pub version_max: u16,
    /// Free-form client identification for logs; may be empty.
    pub client_name: &'a str,
}

impl<'a> Body<'a> for Hello<'a> {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        let b = present(frame.body_as_hello(), request_id)?;
        Ok(Hello {
            version_min: b.version_min(),
            version_max: b.version_max(),
            client_name: b.client_name().unwrap_or(""),
        })
    }

    fn write(&self, fbb: &mut Builder, _: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        let client_name = Some(fbb.create_string(self.client_name));
        let args = fb::HelloArgs {
            version_min: self.version_min,
            version_max: self.version_max,
            client_name,
        };
        fb::Hello::create(fbb, &args).as_union_value()
    }
}

/// Server → client: the negotiated version and the server's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelloOk<'a> {
    pub version: u16,
    pub server_name: &'a str,
    pub limits: Limits,
}

impl<'a> Body<'a> for HelloOk<'a> {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        let b = present(frame.body_as_hello_ok(), request_id)?;
        let l = required(b.limits(), request_id, "HelloOk.limits")?;
        Ok(HelloOk {
            version: b.version(),
            server_name: b.server_name().unwrap_or(""),
            limits: Limits {
                frame_bytes_max: l.frame_bytes_max(),
                payload_bytes_max: l.payload_bytes_max(),
                sync_page_messages_max: l.sync_page_messages_max(),
                idle_timeout_ms: l.idle_timeout_ms(),
                username_bytes_max: l.username_bytes_max(),
                password_bytes_max: l.password_bytes_max(),
                device_name_bytes_max: l.device_name_bytes_max(),
            },
        })
    }

    fn write(&self, fbb: &mut Builder, _: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        let server_name = Some(fbb.create_string(self.server_name));
        let l = &self.limits;
        let limits = fb::LimitsArgs {
            frame_bytes_max: l.frame_bytes_max,
            payload_bytes_max: l.payload_bytes_max,
            sync_page_messages_max: l.sync_page_messages_max,
            idle_timeout_ms: l.idle_timeout_ms,
            username_bytes_max: l.username_bytes_max,
            password_bytes_max: l.password_bytes_max,
            device_name_bytes_max: l.device_name_bytes_max,
        };
        let limits = Some(fb::Limits::create(fbb, &limits));
        let args = fb::HelloOkArgs {
            version: self.version,
            server_name,
            limits,
        };
        fb::HelloOk::create(fbb, &args).as_union_value()
    }
}

/// Client → server: create an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Register<'a> {
    pub username: &'a str,
    pub password: &'a str,
}

impl<'a> Body<'a> for Register<'a> {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        let b = present(frame.body_as_register(), request_id)?;
        Ok(Register {
            username: required(b.username(), request_id, "Register.username")?,
            password: required(b.password(), request_id, "Register.password")?,
        })
    }

    fn write(&self, fbb: &mut Builder, _: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        let username = Some(fbb.create_string(self.username));
        let password = Some(fbb.create_string(self.password));
        fb::Register::create(fbb, &fb::RegisterArgs { username, password }).as_union_value()
    }
}

/// Server → client: the account was created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegisterOk {
    pub user_id: u64,
}

impl<'a> Body<'a> for RegisterOk {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        let b = present(frame.body_as_register_ok(), request_id)?;
        Ok(RegisterOk { user_id: b.user_id() })
    }

    fn write(&self, fbb: &mut Builder, _: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        let args = fb::RegisterOkArgs { user_id: self.user_id };
        fb::RegisterOk::create(fbb, &args).as_union_value()
    }
}

/// How a `Login` authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials<'a> {
    /// Username and password: opens a new device.
    Password { username: &'a str, password: &'a str },
    /// A token from an earlier `LoginOk`: resumes that device.
    Token(&'a [u8]),
}

/// Client → server: authenticate this connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Login<'a> {
    pub credentials: Credentials<'a>,
    /// Shown in device lists; may be empty.
    pub device_name: &'a str,
}

impl<'a> Body<'a> for Login<'a> {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        let b = present(frame.body_as_login(), request_id)?;
        let credentials = match (b.username(), b.password(), b.token()) {
            (Some(username), Some(password), None) => Credentials::Password { username, password },
            (None, None, Some(token)) => Credentials::Token(token.bytes()),
            (None, None, None) | (Some(_), None, None) | (None, Some(_), None) => {
                return Err(FrameError::MissingField {
                    request_id,
                    field: "Login.username+password or Login.token",
                })
            }
            _ => {
                return Err(FrameError::InvalidField {
                    request_id,
                    field: "Login",
                    reason: "give either username and password or a token, not both",
                })
            }
        };
        Ok(Login {
            credentials,
            device_name: b.device_name().unwrap_or(""),
        })
    }

    fn write(&self, fbb: &mut Builder, _: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        let (username, password, token) = match self.credentials {
            Credentials::Password { username, password } => (
                Some(fbb.create_string(username)),
                Some(fbb.create_string(password)),
                None,
            ),
            Credentials::Token(token) => (None, None, Some(fbb.create_vector(token))),
        };
        let device_name = Some(fbb.create_string(self.device_name));
        let args = fb::LoginArgs {
            username,
            password,
            token,
            device_name,
        };
        fb::Login::create(fbb, &args).as_union_value()
    }
}

/// Server → client: authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginOk<'a> {
    pub user_id: u64,
    pub device_id: u64,
    pub token: &'a [u8],
    pub inbox_seq: u64,
    pub device_cursor: u64,
    /// The server's epoch (bumped at every start): tentative entries received under another
    /// epoch are dropped after this login (see [`crate::Deliver::durable_seq`]).
    pub epoch: u64,
}

impl<'a> Body<'a> for LoginOk<'a> {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        let b = present(frame.body_as_login_ok(), request_id)?;
        Ok(LoginOk {
            user_id: b.user_id(),
            device_id: b.device_id(),
            token: required(b.token(), request_id, "LoginOk.token")?.bytes(),
            inbox_seq: b.inbox_seq(),
            device_cursor: b.device_cursor(),
            epoch: b.epoch(),
        })
    }

    fn write(&self, fbb: &mut Builder, _: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        let token = Some(fbb.create_vector(self.token));
        let args = fb::LoginOkArgs {
            user_id: self.user_id,
            device_id: self.device_id,
            token,
            inbox_seq: self.inbox_seq,
            device_cursor: self.device_cursor,
            epoch: self.epoch,
        };
        fb::LoginOk::create(fbb, &args).as_union_value()
    }
}

/// Either direction: liveness probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ping {
    pub nonce: u64,
}

impl<'a> Body<'a> for Ping {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        let b = present(frame.body_as_ping(), request_id)?;
        Ok(Ping { nonce: b.nonce() })
    }

    fn write(&self, fbb: &mut Builder, _: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        fb::Ping::create(fbb, &fb::PingArgs { nonce: self.nonce }).as_union_value()
    }
}

/// Reply to `Ping`, echoing its nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pong {
    pub nonce: u64,
}

impl<'a> Body<'a> for Pong {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        let b = present(frame.body_as_pong(), request_id)?;
        Ok(Pong { nonce: b.nonce() })
    }

    fn write(&self, fbb: &mut Builder, _: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        fb::Pong::create(fbb, &fb::PongArgs { nonce: self.nonce }).as_union_value()
    }
}

/// The one table of error codes: each code's wire value and its human text (what an `Error`
/// frame says when the sender has nothing more specific). From it come [`ErrorCode`],
/// [`ErrorCode::ALL`] and [`ErrorCode::text`].
macro_rules! error_codes {
    ($($code:ident = $value:literal => $text:literal,)*) => {
        /// Why a request failed (mirrors the schema's `ErrorCode`; append only).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u16)]
        pub enum ErrorCode {
            $($code = $value,)*
        }

        impl ErrorCode {
            /// Every code, in wire order (tests check this mirrors the schema).
            pub const ALL: [ErrorCode; [$(ErrorCode::$code,)*].len()] = [$(ErrorCode::$code,)*];

            /// The human text for this code, for an `Error` frame's `message` when the
            /// sender has nothing more specific to say.
            pub const fn text(self) -> &'static str {
                match self {
                    $(ErrorCode::$code => $text,)*
                }
            }
        }
    };
}

error_codes! {
    Unknown = 0 => "unknown error",
    MalformedFrame = 1 => "malformed frame",
    FrameTooLarge = 2 => "frame too large",
    UnknownBody = 3 => "unknown body type",
    UnsupportedVersion = 4 => "no protocol version in common",
    InvalidState = 5 => "not valid in this connection state",
    InvalidRequest = 6 => "invalid request",
    InvalidCredentials = 7 => "invalid credentials",
    UserExists = 8 => "username is taken",
    RegistrationClosed = 9 => "registration is closed",
    NoSuchUser = 10 => "no such user",
    PayloadTooLarge = 11 => "payload too large",
    RateLimited = 12 => "rate limited; retry later",
    Overloaded = 13 => "server overloaded; retry",
    StorageUnavailable = 14 => "storage unavailable; nothing was stored",
    Forbidden = 15 => "not allowed",
    ShuttingDown = 16 => "server shutting down",
    IdleTimeout = 17 => "idle timeout",
    Internal = 18 => "internal error",
    NoSuchGroup = 19 => "no such group",
    NoSuchMessage = 20 => "no such message in this conversation",
    GroupFull = 21 => "the group is at its member limit",
}

impl ErrorCode {
    /// The code for a wire value; values from a newer peer read as `Unknown`.
    pub fn from_wire(value: u16) -> ErrorCode {
        ErrorCode::ALL
            .get(usize::from(value))
            .copied()
            .unwrap_or(ErrorCode::Unknown)
    }

    /// The wire value.
    pub fn to_wire(self) -> u16 {
        self as u16
    }
}

/// Server → client: a typed failure, echoing the failed request's id (a server refuses it
/// from a client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorBody<'a> {
    pub code: ErrorCode,
    pub message: &'a str,
    pub retry_after_ms: u32,
}

impl<'a> Body<'a> for ErrorBody<'a> {
    fn read(frame: fb::Frame<'a>, request_id: u64) -> Result<Self, FrameError> {
        let b = present(frame.body_as_error(), request_id)?;
        Ok(ErrorBody {
            code: ErrorCode::from_wire(b.code().0),
            message: b.message().unwrap_or(""),
            retry_after_ms: b.retry_after_ms(),
        })
    }

    fn write(&self, fbb: &mut Builder, _: &mut DeliverOffsets) -> WIPOffset<UnionWIPOffset> {
        let message = Some(fbb.create_string(self.message));
        let args = fb::ErrorArgs {
            code: fb::ErrorCode(self.code.to_wire()),
            message,
            retry_after_ms: self.retry_after_ms,
        };
        fb::Error::create(fbb, &args).as_union_value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_mirror_the_schema() {
        for code in ErrorCode::ALL {
            let wire = fb::ErrorCode(code.to_wire());
            assert_eq!(wire.variant_name().map(|n| n.to_owned()), Some(format!("{code:?}")));
            assert_eq!(ErrorCode::from_wire(code.to_wire()), code);
        }
        assert_eq!(fb::ErrorCode::ENUM_MAX, ErrorCode::ALL.len() as u16 - 1);
        assert_eq!(ErrorCode::from_wire(9_999), ErrorCode::Unknown);
    }

    #[test]
    fn every_error_code_has_its_own_text() {
        let texts: std::collections::HashSet<_> = ErrorCode::ALL.iter().map(|c| c.text()).collect();
        assert_eq!(texts.len(), ErrorCode::ALL.len(), "two codes share a text");
        assert!(ErrorCode::ALL.iter().all(|c| !c.text().is_empty()));
    }
}
