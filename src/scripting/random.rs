//! `math.random` and `math.randomseed` as Redis has them: Lua 5.1's functions with
//! the C library's `rand()` replaced by a 48-bit linear congruential generator, the
//! one POSIX names `lrand48` (Redis's `rand.c`), so that a script's numbers depend on
//! its seed only, not on the platform's C library.
//!
//! - The generator: `x = (0x5DEECE66D * x + 0xB) mod 2^48`, each draw the top 31 bits
//!   of `x`. It starts from lrand48's own initial state, and `math.randomseed(n)`
//!   sets `x` to `n`'s low 32 bits followed by `0x330E`, as `srand48` does.
//! - A draw `r` in [0, 1) is taken before the arguments are checked (a call that
//!   fails still consumes one): no argument gives `r`, `(u)` gives `floor(r*u)+1`,
//!   `(l, u)` gives `floor(r*(u-l+1))+l`. Bounds are read as Lua's `luaL_checkint`
//!   reads them, with its errors.
//!
//! Redis keeps one sequence for the process; each core here keeps its own (shared by
//! its EVAL and FUNCTION interpreters). A script's numbers after `math.randomseed`
//! are then Redis's whatever runs on the other cores meanwhile, and a fresh server's
//! unseeded numbers are Redis's as long as one core runs the scripts.

use mlua::{ffi, Lua, Table};
use std::cell::Cell;
use std::ffi::c_int;

/// lrand48's initial state (its `X0`, `X1`, `X2`).
const INITIAL: u64 = 0x1234_ABCD_330E;
const MASK: u64 = (1 << 48) - 1;
/// `REDIS_LRAND48_MAX`: draws are reduced modulo it and divided by it.
const DRAW_MAX: u32 = i32::MAX as u32;

thread_local! {
    static STATE: Cell<u64> = const { Cell::new(INITIAL) };
}

/// The next 31-bit draw (`lrand48`).
fn next() -> u32 {
    STATE.with(|s| {
        // Modulo 2^64 first, then 2^48: the same residue, since 2^48 divides 2^64.
        let x = s.get().wrapping_mul(0x5_DEEC_E66D).wrapping_add(0xB) & MASK;
        s.set(x);
        (x >> 17) as u32
    })
}

/// A draw in [0, 1), as Redis's `math.random` makes it.
fn draw() -> f64 {
    f64::from(next() % DRAW_MAX) / f64::from(DRAW_MAX)
}

/// `srand48(seed)`.
fn seed(n: i32) {
    STATE.with(|s| s.set(((n as u32 as u64) << 16) | 0x330E));
}

/// Replace the standard library's `math.random` and `math.randomseed` (before the
/// sandbox wraps `math`).
pub fn install(lua: &Lua, globals: &Table) -> mlua::Result<()> {
    let math: Table = globals.get("math")?;
    // SAFETY: both are written to be called by the interpreter as C functions (see
    // `random` and `randomseed`).
    unsafe {
        math.set("random", lua.create_c_function(random)?)?;
        math.set("randomseed", lua.create_c_function(randomseed)?)?;
    }
    Ok(())
}

/// `luaL_checkint`.
///
/// # Safety
/// As [`random`]'s; may raise, so the caller holds nothing that needs dropping.
unsafe fn check_int(state: *mut ffi::lua_State, arg: c_int) -> f64 {
    ffi::luaL_checkinteger(state, arg) as c_int as f64
}

/// `math.random([l,] [u])`.
///
/// # Safety
/// Called by the interpreter as a C function, with its arguments on the stack. Every
/// call that may raise (`luaL_checkinteger`, `luaL_argerror`, `lua_error`) happens
/// where no Rust value of this frame needs dropping, so the interpreter's `longjmp`
/// skips nothing.
unsafe extern "C-unwind" fn random(state: *mut ffi::lua_State) -> c_int {
    let r = draw();
    let n = match ffi::lua_gettop(state) {
        0 => r,
        1 => {
            let u = check_int(state, 1);
            if u < 1.0 {
                ffi::luaL_argerror(state, 1, c"interval is empty".as_ptr());
            }
            (r * u).floor() + 1.0
        }
        2 => {
            let l = check_int(state, 1);
            let u = check_int(state, 2);
            if l > u {
                ffi::luaL_argerror(state, 2, c"interval is empty".as_ptr());
            }
            (r * (u - l + 1.0)).floor() + l
        }
        _ => {
            // `luaL_error`: the position (none, for a C function) and the message.
            ffi::luaL_where(state, 1);
            ffi::lua_pushstring(state, c"wrong number of arguments".as_ptr());
            ffi::lua_concat(state, 2);
            ffi::lua_error(state);
        }
    };
    ffi::lua_pushnumber(state, n);
    1
}

/// `math.randomseed(n)`.
///
/// # Safety
/// As [`random`]'s.
unsafe extern "C-unwind" fn randomseed(state: *mut ffi::lua_State) -> c_int {
    seed(check_int(state, 1) as i32);
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    extern "C" {
        fn srand48(seed: std::ffi::c_long);
        fn lrand48() -> std::ffi::c_long;
    }

    #[test]
    fn draws_are_the_c_librarys_lrand48() {
        for n in [0, 7, -1, i32::MAX, i32::MIN] {
            seed(n);
            // SAFETY: glibc's own generator, used by this test only (its state is the
            // C library's global, which nothing else in the test binary touches).
            unsafe { srand48(n as std::ffi::c_long) };
            for _ in 0..1000 {
                // SAFETY: as above.
                assert_eq!(i64::from(next()), unsafe { lrand48() } as i64);
            }
        }
    }

    #[test]
    fn a_fresh_core_starts_where_lrand48_starts() {
        // Redis's first `math.random(10)` after start is 4, its first with
        // `math.randomseed(7)` then `math.random(100)` is 27 (redis-server 7.0.15).
        let first = std::thread::spawn(draw).join().unwrap();
        assert_eq!((first * 10.0).floor() + 1.0, 4.0);
        seed(7);
        assert_eq!((draw() * 100.0).floor() + 1.0, 27.0);
    }
}
