//! Every error text a client can receive is defined here, named after what it means,
//! with the exact text of Redis 7.0.15 (byte for byte: clients and tests match on it).
//! Handlers never spell an error themselves: they return `Reply::err(errors::NAME)`
//! or call one of the builders below for texts that carry an argument.
//!
//! Grouped by domain: generic; keys & types; numbers & counts; strings & bitmaps;
//! HyperLogLog; lists & blocking; sorted sets; geo; transactions; connection & client;
//! server & introspection; config; persistence. (Scripting and the rest come later,
//! in their own groups.)
//!
//! An error's first word is its code (`ERR`, `WRONGTYPE`, `NOAUTH`, ...), which Redis
//! counts in `INFO errorstats`; the test at the bottom checks every constant has one.

use crate::protocol::Reply;

// ---- Generic ----------------------------------------------------------------------

pub const SYNTAX: &str = "ERR syntax error";
pub const NOT_IN_MULTI: &str = "ERR Command not allowed inside a transaction";
pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

pub fn syntax() -> Reply {
    Reply::err(SYNTAX)
}
pub fn wrong_arity(name: &str) -> Reply {
    Reply::error(format!(
        "ERR wrong number of arguments for '{}' command",
        name
    ))
}
/// `-ERR unknown command 'x', with args beginning with: 'a' 'b' `
pub fn unknown_command(argv: &[bytes::Bytes]) -> Reply {
    // As Redis: the client's bytes as sent, each argument quoted, cut so the list
    // stays within 128 bytes, and (being printed with %s) each string ending at
    // its first NUL byte.
    let c_str = |b: &[u8]| -> Vec<u8> { b.split(|&c| c == 0).next().unwrap_or(&[]).to_vec() };
    let mut out = b"ERR unknown command '".to_vec();
    let name = c_str(&argv[0]);
    out.extend_from_slice(&name[..name.len().min(128)]);
    out.extend_from_slice(b"', with args beginning with: ");
    let mut args_len = 0;
    for a in argv[1..].iter() {
        if args_len >= 128 {
            break;
        }
        let a = c_str(a);
        let shown = &a[..a.len().min(128 - args_len)];
        out.push(b'\'');
        out.extend_from_slice(shown);
        out.extend_from_slice(b"' ");
        args_len += shown.len() + 3;
    }
    Reply::ErrorBytes(bytes::Bytes::from(out))
}
/// `-ERR unknown subcommand 'x'. Try CLIENT HELP.`
pub fn unknown_subcommand(container: &str, sub: &[u8]) -> Reply {
    let mut out = b"ERR unknown subcommand '".to_vec();
    out.extend_from_slice(&sub[..sub.len().min(128)]);
    out.extend_from_slice(format!("'. Try {} HELP.", container.to_ascii_uppercase()).as_bytes());
    Reply::ErrorBytes(bytes::Bytes::from(out))
}

/// A command handler panicked: the client gets this, the log gets the details.
pub fn internal_error(command: &str) -> Reply {
    Reply::error(format!("ERR internal error while running '{command}'"))
}
/// A reply that would be larger than `max` bytes (see `random_reply`).
pub fn reply_too_large(max: usize) -> Reply {
    Reply::error(format!("ERR reply too large: more than {max} bytes"))
}
/// A malformed request (RESP protocol error); the connection is then closed.
pub fn protocol_error(why: &str) -> Reply {
    Reply::error(format!("ERR {why}"))
}
/// `Unsupported option` of EXPIRE and friends, the option shown as sent.
pub fn unsupported_option(shown: &str) -> Reply {
    Reply::error(format!("ERR Unsupported option {shown}"))
}

// ---- Keys & types -----------------------------------------------------------------

pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const NO_SUCH_KEY: &str = "ERR no such key";
pub const KEY_DOES_NOT_EXIST: &str = "ERR The specified key does not exist";
pub const DB_INDEX: &str = "ERR DB index is out of range";
pub const INVALID_FIRST_DB: &str = "ERR invalid first DB index";
pub const INVALID_SECOND_DB: &str = "ERR invalid second DB index";
pub const SAME_OBJECT: &str = "ERR source and destination objects are the same";
pub const INVALID_CURSOR: &str = "ERR invalid cursor";
pub const BUSYKEY: &str = "BUSYKEY Target key name already exists.";
/// RESTORE: the payload's trailer (version or checksum) is wrong.
pub const DUMP_PAYLOAD: &str = "ERR DUMP payload version or checksum are wrong";
/// RESTORE: the payload checks out but its contents do not parse.
pub const BAD_DATA_FORMAT: &str = "ERR Bad data format";
pub const RESTORE_TTL_NEGATIVE: &str = "ERR Invalid TTL value, must be >= 0";
pub const RESTORE_IDLETIME_NEGATIVE: &str = "ERR Invalid IDLETIME value, must be >= 0";
pub const RESTORE_FREQ_RANGE: &str = "ERR Invalid FREQ value, must be >= 0 and <= 255";
pub const IDLETIME_UNDER_LFU: &str = "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";
pub const FREQ_WITHOUT_LFU: &str = "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";
pub const EXPIRE_NX_WITH_OTHERS: &str =
    "ERR NX and XX, GT or LT options at the same time are not compatible";
pub const EXPIRE_GT_AND_LT: &str = "ERR GT and LT options at the same time are not compatible";

pub fn wrongtype() -> Reply {
    Reply::err(WRONGTYPE)
}
/// `invalid expire time in 'set' command`: the command's name as given.
pub fn invalid_expire_time(command: &str) -> Reply {
    Reply::error(format!("ERR invalid expire time in '{command}' command"))
}

// ---- Numbers & counts -------------------------------------------------------------

pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub const NOT_FLOAT: &str = "ERR value is not a valid float";
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
pub const DECREMENT_OVERFLOW: &str = "ERR decrement would overflow";
pub const INCREMENT_NAN: &str = "ERR increment would produce NaN or Infinity";
pub const VALUE_NAN: &str = "ERR value is NaN or Infinity";
pub const HASH_NOT_INTEGER: &str = "ERR hash value is not an integer";
pub const HASH_NOT_FLOAT: &str = "ERR hash value is not a float";
pub const OUT_OF_RANGE: &str = "ERR value is out of range";
pub const NOT_POSITIVE: &str = "ERR value is out of range, must be positive";
/// A count of `LLONG_MIN`, whose absolute value does not fit (SRANDMEMBER & co).
pub const COUNT_LLONG_MIN: &str =
    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807";
pub const NUMKEYS_NOT_POSITIVE: &str = "ERR numkeys should be greater than 0";
pub const NUMKEYS_TOO_MANY: &str = "ERR Number of keys can't be greater than number of args";
pub const COUNT_NOT_POSITIVE: &str = "ERR count should be greater than 0";
pub const COUNT_NEGATIVE: &str = "ERR COUNT can't be negative";
pub const LIMIT_NEGATIVE: &str = "ERR LIMIT can't be negative";
pub const MAXLEN_NEGATIVE: &str = "ERR MAXLEN can't be negative";

pub fn not_integer() -> Reply {
    Reply::err(NOT_INTEGER)
}
pub fn not_float() -> Reply {
    Reply::err(NOT_FLOAT)
}

// ---- Strings & bitmaps ------------------------------------------------------------

pub const STRING_TOO_LONG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
pub const OFFSET_OUT_OF_RANGE: &str = "ERR offset is out of range";
pub const LCS_NOT_STRINGS: &str = "ERR The specified keys must contain string values";
pub const LCS_LEN_AND_IDX: &str =
    "ERR If you want both the length and indexes, please just use IDX.";
pub const LCS_STRING_TOO_LONG: &str = "ERR String too long for LCS";
pub const LCS_OVER_MAX_BULK: &str =
    "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len";
pub const LCS_NO_MEMORY: &str =
    "ERR Insufficient memory, failed allocating transient memory for LCS";
pub const BIT_OFFSET_NOT_INTEGER: &str = "ERR bit offset is not an integer or out of range";
pub const BIT_NOT_INTEGER: &str = "ERR bit is not an integer or out of range";
pub const BIT_NOT_0_OR_1: &str = "ERR The bit argument must be 1 or 0.";
pub const BITOP_NOT_ONE_SOURCE: &str = "ERR BITOP NOT must be called with a single source key.";
pub const BITFIELD_BAD_TYPE: &str = "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";
pub const BITFIELD_BAD_OVERFLOW: &str = "ERR Invalid OVERFLOW type specified";
pub const BITFIELD_RO_GET_ONLY: &str = "ERR BITFIELD_RO only supports the GET subcommand";

// ---- HyperLogLog ------------------------------------------------------------------

pub const NOT_HLL: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";
pub const HLL_NOT_SPARSE: &str = "ERR HLL encoding is not sparse";
pub const HLL_TEST_DENSE_CONVERSION: &str = "ERR TESTFAILED dense conversion";
pub const HLL_TEST_CORRUPTED: &str = "ERR TESTFAILED corrupted sketch";
pub const HLL_TEST_DISAGREE: &str = "ERR TESTFAILED Sparse and dense sketches disagree";

/// `PFDEBUG <sub>` with an unknown `sub` (shown up to its first NUL byte).
pub fn unknown_pfdebug_subcommand(sub: &str) -> Reply {
    Reply::error(format!("ERR Unknown PFDEBUG subcommand '{sub}'"))
}

// ---- Lists & blocking -------------------------------------------------------------

pub const INDEX_OUT_OF_RANGE: &str = "ERR index out of range";
pub const RANK_ZERO: &str = "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list";
pub const TIMEOUT_NOT_FLOAT: &str = "ERR timeout is not a float or out of range";
pub const TIMEOUT_NEGATIVE: &str = "ERR timeout is negative";
/// The answer of a blocked command ended by `CLIENT UNBLOCK id ERROR`.
pub const UNBLOCKED: &str = "UNBLOCKED client unblocked via CLIENT UNBLOCK";
/// The answer of a command blocked on keys when the server becomes a replica.
pub const UNBLOCKED_ROLE_CHANGE: &str =
    "UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)";

// ---- Sorted sets (and SORT) -------------------------------------------------------

pub const MIN_MAX_NOT_FLOAT: &str = "ERR min or max is not a float";
pub const MIN_MAX_NOT_LEX: &str = "ERR min or max not valid string range item";
pub const SCORE_NAN: &str = "ERR resulting score is not a number (NaN)";
pub const ZADD_XX_AND_NX: &str = "ERR XX and NX options at the same time are not compatible";
pub const ZADD_GT_LT_NX: &str = "ERR GT, LT, and/or NX options at the same time are not compatible";
pub const ZADD_INCR_PAIRS: &str = "ERR INCR option supports a single increment-element pair";
pub const LIMIT_WITHOUT_BY: &str =
    "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX";
pub const WITHSCORES_BYLEX: &str =
    "ERR syntax error, WITHSCORES not supported in combination with BYLEX";
pub const WEIGHT_NOT_FLOAT: &str = "ERR weight value is not a float";
pub const SORT_SCORE_NOT_DOUBLE: &str = "ERR One or more scores can't be converted into double";

/// ZUNIONSTORE & co with numkeys 0; `command` in lower case.
pub fn no_input_key(command: &str) -> Reply {
    Reply::error(format!(
        "ERR at least 1 input key is needed for '{command}' command"
    ))
}

// ---- Geo --------------------------------------------------------------------------

pub const GEO_UNSUPPORTED_UNIT: &str = "ERR unsupported unit provided. please use M, KM, FT, MI";
pub const GEO_NEED_RADIUS: &str = "ERR need numeric radius";
pub const GEO_NEED_WIDTH: &str = "ERR need numeric width";
pub const GEO_NEED_HEIGHT: &str = "ERR need numeric height";
pub const GEO_RADIUS_NEGATIVE: &str = "ERR radius cannot be negative";
pub const GEO_BOX_NEGATIVE: &str = "ERR height or width cannot be negative";
pub const GEO_DECODE_MEMBER: &str = "ERR could not decode requested zset member";
pub const GEO_COUNT_NOT_POSITIVE: &str = "ERR COUNT must be > 0";
pub const GEO_ANY_WITHOUT_COUNT: &str = "ERR the ANY argument requires COUNT argument";
pub const GEOSEARCHSTORE_WITH: &str =
    "ERR GEOSEARCHSTORE is not compatible with WITHDIST, WITHHASH and WITHCOORD options";
pub const GEORADIUS_STORE_WITH: &str =
    "ERR STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH and WITHCOORD options";
/// GEOADD could not find ZADD in the command table (cannot happen; Redis's text).
pub const GEO_NO_ZADD: &str = "ERR unknown command 'zadd'";

/// Coordinates outside the valid range, printed as `%.6f`.
pub fn invalid_lon_lat(lon: f64, lat: f64) -> Reply {
    Reply::error(format!(
        "ERR invalid longitude,latitude pair {lon:.6},{lat:.6}"
    ))
}
/// GEOSEARCH without exactly one of FROMMEMBER / FROMLONLAT.
pub fn geo_one_origin(command: &str) -> Reply {
    Reply::error(format!(
        "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {command}"
    ))
}
/// GEOSEARCH without exactly one of BYRADIUS / BYBOX.
pub fn geo_one_shape(command: &str) -> Reply {
    Reply::error(format!(
        "ERR exactly one of BYRADIUS and BYBOX can be specified for {command}"
    ))
}

// ---- Transactions -----------------------------------------------------------------

pub const MULTI_NESTED: &str = "ERR MULTI calls can not be nested";
pub const EXEC_WITHOUT_MULTI: &str = "ERR EXEC without MULTI";
pub const DISCARD_WITHOUT_MULTI: &str = "ERR DISCARD without MULTI";
pub const WATCH_INSIDE_MULTI: &str = "ERR WATCH inside MULTI is not allowed";
pub const EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";

/// EXEC of a transaction whose command was refused at EXEC time; `why` without
/// its `ERR ` code.
pub fn exec_abort(why: &str) -> Reply {
    Reply::error(format!("EXECABORT Transaction discarded because of: {why}"))
}

// ---- Connection & client ----------------------------------------------------------

/// A monitoring client (a replica to Redis) ran a read or a write.
pub const NOREPLICAS: &str = "NOREPLICAS Not enough good replicas to write.";
pub const READONLY_REPLICA: &str = "READONLY You can't write against a read only replica.";
pub const MASTERDOWN: &str =
    "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.";
pub const REPLICA_KEYSPACE: &str = "ERR Replica can't interact with the keyspace";
/// MONITOR inside EXEC.
pub const MONITOR_DENY_BLOCKING: &str = "ERR MONITOR isn't allowed for DENY BLOCKING client";
pub const NOAUTH: &str = "NOAUTH Authentication required.";
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
pub const AUTH_NO_PASSWORD: &str = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?";
pub const NOPROTO: &str = "NOPROTO unsupported protocol version";
pub const PROTOCOL_NOT_INTEGER: &str = "ERR Protocol version is not an integer or out of range";
pub const HELLO_NOAUTH: &str = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time";
pub const CLIENT_NAME_INVALID: &str =
    "ERR Client names cannot contain spaces, newlines or special characters.";
pub const UNBLOCK_REASON: &str = "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR";
pub const PAUSE_MODE: &str = "ERR CLIENT PAUSE mode must be WRITE or ALL";
pub const TIMEOUT_NOT_INTEGER: &str = "ERR timeout is not an integer or out of range";
pub const INVALID_CLIENT_ID: &str = "ERR Invalid client ID";
pub const CLIENT_ID_NOT_POSITIVE: &str = "ERR client-id should be greater than 0";
pub const NO_SUCH_CLIENT: &str = "ERR No such client";
pub const MAX_CLIENTS: &str = "ERR max number of clients reached";

/// HELLO with an option it does not know.
pub fn hello_syntax(option: &str) -> Reply {
    Reply::error(format!("ERR Syntax error in HELLO option '{option}'"))
}
/// CLIENT SETINFO with an attribute it does not know.
pub fn unrecognized_option(option: &str) -> Reply {
    Reply::error(format!("ERR Unrecognized option '{option}'"))
}
/// CLIENT SETINFO LIB-NAME / LIB-VER with a space or special character.
pub fn client_info_invalid(attr: &str) -> Reply {
    Reply::error(format!(
        "ERR {attr} cannot contain spaces, newlines or special characters."
    ))
}
/// CLIENT LIST / KILL TYPE with an unknown type.
pub fn unknown_client_type(kind: &str) -> Reply {
    Reply::error(format!("ERR Unknown client type '{kind}'"))
}
/// CLIENT KILL USER with a user that does not exist.
pub fn no_such_user(name: &str) -> Reply {
    Reply::error(format!("ERR No such user '{name}'"))
}

// ---- Server & introspection -------------------------------------------------------

pub const INVALID_COMMAND: &str = "ERR Invalid command specified";
pub const NO_KEY_ARGUMENTS: &str = "ERR The command has no key arguments";
pub const INVALID_COMMAND_ARGUMENTS: &str = "ERR Invalid arguments specified for command";
pub const INVALID_COMMAND_ARITY: &str = "ERR Invalid number of arguments specified for command";
pub const NO_SHUTDOWN: &str = "ERR No shutdown in progress.";
pub const SHUTDOWN_FAILED: &str = "ERR Errors trying to SHUTDOWN. Check logs.";
pub const SHUTDOWN_DENY_BLOCKING: &str =
    "ERR SHUTDOWN without NOW or ABORT isn't allowed for DENY BLOCKING client";
pub const CLUSTER_DISABLED: &str = "ERR This instance has cluster support disabled";
pub const MODULE_NOT_ALLOWED: &str = "ERR MODULE command not allowed. If the enable-module-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.";
pub const DEBUG_NOT_ALLOWED: &str = "ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.";
pub const SLOWLOG_GET_ARGS: &str =
    "ERR unknown subcommand or wrong number of arguments for 'get'. Try SLOWLOG HELP.";
pub const SLOWLOG_COUNT: &str = "ERR count should be greater than or equal to -1";

/// `DEBUG <sub>` with an unknown subcommand or the wrong arguments.
pub fn debug_unknown_subcommand(sub: &str) -> Reply {
    Reply::error(format!(
        "ERR unknown subcommand or wrong number of arguments for '{sub}'. Try DEBUG HELP."
    ))
}
/// `<container> <sub>` with the wrong arguments, `sub` as the client wrote it
/// (Redis's `addReplySubcommandSyntaxError`).
pub fn unknown_subcommand_or_arity(container: &str, sub: &[u8]) -> Reply {
    let mut out = b"ERR unknown subcommand or wrong number of arguments for '".to_vec();
    out.extend_from_slice(&sub[..sub.len().min(128)]);
    out.extend_from_slice(format!("'. Try {container} HELP.").as_bytes());
    Reply::ErrorBytes(bytes::Bytes::from(out))
}
/// A RESP2 client in subscribe mode ran another command (`name`: its full name).
pub fn only_subscribe_commands(name: &str) -> Reply {
    Reply::error(format!(
        "ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
    ))
}
/// LATENCY GRAPH for an event with no samples.
pub fn no_latency_samples(event: &str) -> Reply {
    Reply::error(format!("ERR No samples available for event '{event}'"))
}

// ---- Config -----------------------------------------------------------------------

/// CONFIG SET of a known parameter refused (bad value, immutable, duplicate...).
pub fn config_set_failed(name: &str, why: &str) -> Reply {
    Reply::error(format!(
        "ERR CONFIG SET failed (possibly related to argument '{name}') - {why}"
    ))
}
/// CONFIG SET of a parameter that does not exist.
pub fn config_set_unknown(name: &str) -> Reply {
    Reply::error(format!(
        "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
    ))
}
/// CONFIG REWRITE failed; `why` is the I/O error.
pub fn config_rewrite_failed(why: &str) -> Reply {
    Reply::error(format!("ERR {why}"))
}

// ---- Persistence ------------------------------------------------------------------

pub const LOADING: &str = "LOADING Redis is loading the dataset in memory";
pub const MISCONF_BGSAVE: &str = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.";
/// SAVE / BGSAVE / DEBUG RELOAD while a save runs.
pub const BGSAVE_IN_PROGRESS: &str = "ERR Background save already in progress";
pub const BGSAVE_AOF_ACTIVE: &str = "ERR Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible.";
pub const AOF_REWRITE_IN_PROGRESS: &str =
    "ERR Background append only file rewriting already in progress";
/// SAVE failed: Redis answers its bare `shared.err`, the code alone.
pub const SAVE_FAILED: &str = "ERR";
pub const DEBUG_RELOAD_SAVE_FAILED: &str = "ERR Error trying to save the DB.";
pub const DEBUG_RELOAD_OPTIONS: &str =
    "ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.";

/// A write refused because persistence is failing (`why`: e.g. the AOF write error).
pub fn misconf(why: &str) -> Reply {
    Reply::error(format!("MISCONF {why}"))
}
/// DEBUG RELOAD could not load the file it just saved.
pub const RDB_LOAD_FAILED: &str = "ERR Error trying to load the RDB dump";

// Client-side caching (CLIENT TRACKING / CACHING), as Redis 7.0's `clientCommand`.
pub const TRACKING_ONE_REDIRECT: &str = "ERR A client can only redirect to a single other client";
pub const TRACKING_NO_REDIRECT_CLIENT: &str =
    "ERR The client ID you want redirect to does not exist";
pub const TRACKING_PREFIX_NEEDS_BCAST: &str = "ERR PREFIX option requires BCAST mode to be enabled";
pub const TRACKING_BCAST_SWITCH: &str = "ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.";
pub const TRACKING_OPT_WITH_BCAST: &str = "ERR OPTIN and OPTOUT are not compatible with BCAST";
pub const TRACKING_OPTIN_AND_OPTOUT: &str = "ERR You can't specify both OPTIN mode and OPTOUT mode";
pub const TRACKING_OPT_SWITCH: &str = "ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.";
pub const CACHING_NOT_TRACKING: &str = "ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled";
pub const CACHING_YES_NOT_OPTIN: &str =
    "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.";
pub const CACHING_NO_NOT_OPTOUT: &str =
    "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.";

/// A BCAST prefix overlapping another of the client's (Redis's
/// `checkPrefixCollisionsOrReply`): with one given in the same command (`given`) or
/// one it already has.
pub fn prefix_overlap(prefix: &[u8], other: &[u8], given: bool) -> Reply {
    let which = if given {
        "another provided"
    } else {
        "an existing"
    };
    Reply::error(format!(
        "ERR Prefix '{}' overlaps with {which} prefix '{}'. Prefixes for a single client must not overlap.",
        String::from_utf8_lossy(prefix),
        String::from_utf8_lossy(other)
    ))
}

/// A script has run past `busy-reply-threshold`.
pub const BUSY_SCRIPT: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";

/// A function has run past `busy-reply-threshold`.
pub const BUSY_FUNCTION: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";

#[cfg(test)]
mod tests {
    use super::*;

    /// Every constant in this file (a `pub const X: &str`), with its text.
    fn constants() -> Vec<(String, String)> {
        let src = include_str!("errors.rs");
        let mut out = Vec::new();
        let mut lines = src.lines();
        while let Some(line) = lines.next() {
            let Some(rest) = line.strip_prefix("pub const ") else {
                continue;
            };
            let name = rest.split(':').next().unwrap().to_string();
            let mut decl = line.to_string();
            while !decl.trim_end().ends_with(';') {
                decl.push_str(lines.next().unwrap());
            }
            let start = decl.find('"').unwrap();
            let end = decl.rfind('"').unwrap();
            out.push((name, decl[start + 1..end].replace("\\\"", "\"")));
        }
        out
    }

    #[test]
    fn every_error_starts_with_its_code() {
        let all = constants();
        assert!(all.len() > 100, "found only {} constants", all.len());
        for (name, text) in all {
            // The code: upper-case letters, then a space and the message; SAVE_FAILED
            // is Redis's bare `-ERR`, the code alone.
            let (code, message) = text.split_once(' ').unwrap_or((&text, ""));
            assert!(
                !code.is_empty() && code.bytes().all(|b| b.is_ascii_uppercase()),
                "{name}: {text:?} must start with an upper-case error code"
            );
            assert!(
                !message.is_empty() || name == "SAVE_FAILED",
                "{name}: {text:?} has no message after its code"
            );
            assert!(!text.contains(['\r', '\n']), "{name}: {text:?} spans lines");
        }
    }

    #[test]
    fn constants_are_the_texts_parsed() {
        // The parser above reads what the compiler reads.
        let all = constants();
        let get = |n: &str| all.iter().find(|(name, _)| name == n).unwrap().1.clone();
        assert_eq!(get("WRONGTYPE"), WRONGTYPE);
        assert_eq!(get("COUNT_LLONG_MIN"), COUNT_LLONG_MIN);
        assert_eq!(get("DEBUG_NOT_ALLOWED"), DEBUG_NOT_ALLOWED);
        assert_eq!(get("SAVE_FAILED"), SAVE_FAILED);
    }

    #[test]
    fn builders_keep_redis_text() {
        assert_eq!(
            wrong_arity("get"),
            Reply::err("ERR wrong number of arguments for 'get' command")
        );
        assert_eq!(
            invalid_lon_lat(200.0, 10.0),
            Reply::err("ERR invalid longitude,latitude pair 200.000000,10.000000")
        );
        assert_eq!(
            exec_abort("no such key"),
            Reply::err("EXECABORT Transaction discarded because of: no such key")
        );
        assert_eq!(
            config_set_unknown("foo"),
            Reply::err("ERR Unknown option or number of arguments for CONFIG SET - 'foo'")
        );
    }
}
