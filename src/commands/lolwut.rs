//! LOLWUT [VERSION v] [...]: computer art and the version, as Redis 7.0 draws it.
//!
//! Redis 7.0 has no art of its own: without `VERSION`, or with a version other than 5
//! or 6, it answers `Redis ver. 7.0.15`. `VERSION 5` draws Georg Nees's *Schotter*
//! (rows of squares, more rotated and displaced the lower they are) in Braille
//! characters, two by four dots each; `VERSION 6` draws a skyline in the terminal's
//! four grey levels, one ANSI-coloured space per pixel. Both take their randomness
//! from the C library in Redis, so only what does not depend on it is the same from
//! one run to the next (Schotter's first two rows, the canvas sizes, the texts); the
//! arithmetic keeps Redis's types (`float` where Redis computes in `float`, C's
//! truncations and rounding) so that those parts match to the byte.
//!
//! The reply is a verbatim string (`txt`) in RESP3 and a bulk string in RESP2.

use super::{args, Command, Exec};
use crate::client::Client;
use crate::commands::connection::REDIS_VERSION;
use crate::protocol::Reply;
use bytes::Bytes;
use rand::Rng;

pub static COMMANDS: &[Command] = &[Command::new(
    "lolwut",
    -1,
    "readonly fast",
    "read fast",
    Exec::Conn(lolwut),
)];

/// C's `RAND_MAX` (glibc), the bound of the draws Redis's art makes.
const RAND_MAX: u32 = i32::MAX as u32;

fn lolwut(_c: &mut Client, argv: &[Bytes]) -> Reply {
    let mut rest = &argv[1..];
    // Redis prints the version as "%u.0.0" and looks at its first characters, so a
    // version wraps as a C unsigned int (2^32 + 5 draws Schotter).
    let mut version = None;
    if argv.len() >= 3 && args::eq(&argv[1], "version") {
        match args::int(&argv[2]) {
            Ok(v) => version = Some(v as u32),
            Err(e) => return e,
        }
        rest = &argv[3..];
    }
    let text = match version {
        Some(5) => match numbers(rest, [66, 8, 12]) {
            Ok([cols, per_row, per_col]) => schotter(cols, per_row, per_col),
            Err(e) => return e,
        },
        Some(6) => match numbers(rest, [80, 20, 0]) {
            Ok([cols, rows, _]) => skyline(cols, rows),
            Err(e) => return e,
        },
        _ => format!("Redis ver. {REDIS_VERSION}\n"),
    };
    Reply::Verbatim("txt", Bytes::from(text))
}

/// Up to three integer arguments over `defaults`; Redis reads them one by one and
/// fails at the first that is not an integer.
fn numbers(argv: &[Bytes], mut values: [i64; 3]) -> Result<[i64; 3], Reply> {
    for (value, arg) in values.iter_mut().zip(argv) {
        *value = args::int(arg)?;
    }
    Ok(values)
}

/// A picture of `width` x `height` pixels, each a colour (0 is the background of
/// Schotter, 0-3 the greys of the skyline). Drawing outside it does nothing.
struct Canvas {
    width: i32,
    height: i32,
    pixels: Vec<u8>,
}

impl Canvas {
    fn new(width: i32, height: i32, color: u8) -> Canvas {
        let (w, h) = (width.max(0) as usize, height.max(0) as usize);
        Canvas {
            width,
            height,
            pixels: vec![color; w * h],
        }
    }

    fn at(&self, x: i32, y: i32) -> Option<usize> {
        let inside = (0..self.width).contains(&x) && (0..self.height).contains(&y);
        inside.then(|| (x + y * self.width) as usize)
    }

    fn set(&mut self, x: i32, y: i32, color: u8) {
        if let Some(i) = self.at(x, y) {
            self.pixels[i] = color;
        }
    }

    fn get(&self, x: i32, y: i32) -> u8 {
        self.at(x, y).map_or(0, |i| self.pixels[i])
    }

    /// Bresenham's line from (x1, y1) to (x2, y2), both ends drawn.
    fn line(&mut self, (mut x1, mut y1): (i32, i32), (x2, y2): (i32, i32), color: u8) {
        let (dx, dy) = ((x2 - x1).abs(), (y2 - y1).abs());
        let (sx, sy) = (if x1 < x2 { 1 } else { -1 }, if y1 < y2 { 1 } else { -1 });
        let mut err = dx - dy;
        loop {
            self.set(x1, y1, color);
            if x1 == x2 && y1 == y2 {
                break;
            }
            let e2 = err * 2;
            if e2 > -dy {
                err -= dy;
                x1 += sx;
            }
            if e2 < dx {
                err += dx;
                y1 += sy;
            }
        }
    }

    /// A square of side `size` centred on (x, y), turned by `angle` radians: its
    /// corners lie on the circle through them, from 45 degrees on, a quarter turn apart.
    // Redis divides by this truncated root of 2, not the exact one: a size on the edge
    // of rounding would round otherwise.
    #[allow(clippy::approx_constant)]
    fn square(&mut self, (x, y): (i32, i32), size: f32, angle: f32, color: u8) {
        let size = ((size as f64 / 1.4142135623) as f32 as f64).round() as f32;
        let mut k = (std::f64::consts::FRAC_PI_4 + angle as f64) as f32;
        let mut corners = [(0, 0); 4];
        for corner in &mut corners {
            let px = ((k as f64).sin() * size as f64 + x as f64).round() as i32;
            let py = ((k as f64).cos() * size as f64 + y as f64).round() as i32;
            *corner = (px, py);
            k = (k as f64 + std::f64::consts::FRAC_PI_2) as f32;
        }
        for j in 0..4 {
            self.line(corners[j], corners[(j + 1) % 4], color);
        }
    }
}

/// C's `rand()`: 0 to `RAND_MAX`.
fn c_rand(rng: &mut impl Rng) -> i32 {
    rng.gen_range(0..=RAND_MAX) as i32
}

/// LOLWUT VERSION 5 [columns] [squares per row] [squares per column].
fn schotter(cols: i64, per_row: i64, per_col: i64) -> String {
    let cols = cols.clamp(1, 1000) as i32;
    let per_row = per_row.clamp(1, 200) as i32;
    let per_col = per_col.clamp(1, 200) as i32;
    let width = cols * 2;
    let padding = if width > 4 { 2 } else { 0 };
    let side = (width - padding * 2) as f32 / per_row as f32;
    let height = (side * per_col as f32 + (padding * 2) as f32) as i32;
    let mut canvas = Canvas::new(width, height, 0);
    let mut rng = rand::thread_rng();
    for y in 0..per_col {
        for x in 0..per_row {
            let mut sx = (x as f32 * side + side / 2.0 + padding as f32) as i32;
            let mut sy = (y as f32 * side + side / 2.0 + padding as f32) as i32;
            // Lower rows turn and shift more, at random.
            let mut angle = 0.0f32;
            if y > 1 {
                let mut draw =
                    || c_rand(&mut rng) as f32 / RAND_MAX as f32 / per_col as f32 * y as f32;
                let (mut r1, mut r2, mut r3) = (draw(), draw(), draw());
                for r in [&mut r1, &mut r2, &mut r3] {
                    if c_rand(&mut rng) % 2 == 1 {
                        *r = -*r;
                    }
                }
                angle = r1;
                sx = (sx as f32 + r2 * side / 3.0) as i32;
                sy = (sy as f32 + r3 * side / 3.0) as i32;
            }
            canvas.square((sx, sy), side, angle, 1);
        }
    }
    let mut text = braille(&canvas);
    text.push_str("\nGeorg Nees - schotter, plotter on paper, 1968. Redis ver. ");
    text.push_str(REDIS_VERSION);
    text.push('\n');
    text
}

/// Each 2x4 block of pixels as one Braille character (dots 1-8 in Unicode's order:
/// the left column's three top dots, the right column's, then the bottom pair), rows
/// separated by a newline unless the last row starts on the canvas's last line.
fn braille(canvas: &Canvas) -> String {
    const DOTS: [(i32, i32); 8] = [
        (0, 0),
        (0, 1),
        (0, 2),
        (1, 0),
        (1, 1),
        (1, 2),
        (0, 3),
        (1, 3),
    ];
    let mut text = String::new();
    for y in (0..canvas.height).step_by(4) {
        for x in (0..canvas.width).step_by(2) {
            let mut bits = 0u32;
            for (bit, (dx, dy)) in DOTS.iter().enumerate() {
                if canvas.get(x + dx, y + dy) != 0 {
                    bits |= 1 << bit;
                }
            }
            text.push(char::from_u32(0x2800 + bits).unwrap_or(' '));
        }
        if y != canvas.height - 1 {
            text.push('\n');
        }
    }
    text
}

/// One building of the skyline: its left edge, size and colour, and whether it has
/// windows (the foreground ones, in the other greys at random).
struct Building {
    left: i32,
    width: i32,
    height: i32,
    windows: bool,
    color: u8,
}

fn draw_building(canvas: &mut Canvas, b: &Building, rng: &mut impl Rng) {
    let bottom = canvas.height - 1;
    let top = bottom - b.height + 1;
    for y in (top..=bottom).rev() {
        for x in b.left..b.left + b.width {
            // The roof is four pixels narrower.
            if y == top && (x <= b.left + 1 || x >= b.left + b.width - 2) {
                continue;
            }
            let mut color = b.color;
            let inner = x > b.left + 1 && x < b.left + b.width - 2 && y > top + 1 && y < bottom - 1;
            if b.windows && inner {
                // Windows two pixels wide and one tall (terminal cells are tall).
                let (relx, rely) = (x - (b.left + 1), y - (top + 1));
                if (relx / 2) % 2 != 0 && rely % 2 != 0 {
                    loop {
                        color = 1 + (c_rand(rng) % 2) as u8;
                        if color != b.color {
                            break;
                        }
                    }
                    if relx % 2 != 0 {
                        color = canvas.get(x - 1, y);
                    }
                }
            }
            canvas.set(x, y, color);
        }
    }
}

/// LOLWUT VERSION 6 [columns] [rows]: two rows of plain buildings behind (the lighter
/// ones furthest), then dark ones with windows.
fn skyline(cols: i64, rows: i64) -> String {
    let cols = cols.clamp(1, 1000) as i32;
    let rows = rows.clamp(1, 1000) as i32;
    let mut canvas = Canvas::new(cols, rows, 3);
    let mut rng = rand::thread_rng();
    let h = canvas.height;
    for color in [2u8, 1] {
        let mut offset = -10;
        while offset < canvas.width {
            offset += c_rand(&mut rng) % 8;
            let width = 10 + c_rand(&mut rng) % 9;
            let height = match color {
                2 => h / 2 + (c_rand(&mut rng) % h) / 2,
                _ => h / 2 + (c_rand(&mut rng) % h) / 3,
            };
            let b = Building {
                left: offset,
                width,
                height,
                windows: false,
                color,
            };
            draw_building(&mut canvas, &b, &mut rng);
            offset += if color == 2 { width / 2 } else { width + 1 };
        }
    }
    let mut offset = -10;
    while offset < canvas.width {
        offset += c_rand(&mut rng) % 8;
        let mut width = 5 + c_rand(&mut rng) % 14;
        if width % 4 != 0 {
            width += width % 3;
        }
        let height = h / 3 + (c_rand(&mut rng) % h) / 2;
        let b = Building {
            left: offset,
            width,
            height,
            windows: true,
            color: 0,
        };
        draw_building(&mut canvas, &b, &mut rng);
        offset += width + 5;
    }
    let mut text = String::new();
    for y in 0..canvas.height {
        for x in 0..canvas.width {
            // Foreground and background both, so that terminals agree.
            let escape = match canvas.get(x, y) {
                1 => "0;90;100m",
                2 => "0;37;47m",
                3 => "0;97;107m",
                _ => "0;30;40m",
            };
            text.push_str("\x1b[");
            text.push_str(escape);
            text.push_str(" \x1b[0m");
        }
        if y != canvas.height - 1 {
            text.push('\n');
        }
    }
    text.push_str("\nDedicated to the 8 bit game developers of past and present.\n");
    text.push_str("Original 8 bit image from Plaguemon by hikikomori. Redis ver. ");
    text.push_str(REDIS_VERSION);
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_square_s_corners_are_redis_s() {
        // An unturned square of side 10 at (10, 10): size 10 / sqrt 2 rounds to 7, and
        // the corners lie at 45, 135, 225 and 315 degrees on that circle.
        let mut c = Canvas::new(21, 21, 0);
        c.square((10, 10), 10.0, 0.0, 1);
        for (x, y) in [(15, 15), (15, 5), (5, 5), (5, 15)] {
            assert_eq!(c.get(x, y), 1, "corner ({x}, {y})");
        }
        assert_eq!(c.get(10, 10), 0);
    }

    #[test]
    fn braille_puts_each_dot_on_its_bit() {
        let mut c = Canvas::new(2, 4, 0);
        c.set(0, 3, 1);
        c.set(1, 0, 1);
        // Dot 7 (bit 6) and dot 4 (bit 3): U+2848; height 4, so a newline follows.
        assert_eq!(braille(&c), "\u{2848}\n");
    }

    #[test]
    fn the_skyline_fills_every_cell() {
        for (cols, rows) in [(1, 1), (3, 2), (80, 20), (17, 999)] {
            let text = skyline(cols, rows);
            let art: Vec<&str> = text.lines().take(rows as usize).collect();
            assert_eq!(art.len(), rows as usize);
            for line in art {
                assert_eq!(line.matches(" \x1b[0m").count(), cols as usize);
            }
        }
    }
}
