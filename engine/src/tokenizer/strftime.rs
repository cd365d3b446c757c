//! `strftime_now(fmt)` for chat templates (Llama 3.x writes today's date into the system prompt).
//!
//! transformers calls Python's `datetime.now().strftime(fmt)`. We format the current time in UTC
//! with the C-locale names; a server has no better-defined local time zone, and this avoids a
//! time-zone database dependency.

use std::time::{SystemTime, UNIX_EPOCH};

const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// A broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DateTime {
    pub year: i64,
    /// 1..=12
    pub month: u32,
    /// 1..=31
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// 0 = Sunday
    pub weekday: u32,
    /// 1..=366
    pub yearday: u32,
}

impl DateTime {
    pub fn now_utc() -> Self {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        Self::from_unix(secs)
    }

    pub fn from_unix(secs: i64) -> Self {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        let is_leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let before: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
        let leap_day = u32::from(is_leap && month > 2);
        DateTime {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem / 60 % 60,
            second: rem % 60,
            // 1970-01-01 was a Thursday.
            weekday: (days + 4).rem_euclid(7) as u32,
            yearday: before[(month - 1) as usize] + leap_day + day,
        }
    }
}

/// (year, month, day) of a day count since 1970-01-01 in the proleptic Gregorian calendar.
/// Works in 400-year eras (146097 days each) counted from 0000-03-01, so that the leap day is the
/// last day of each era-year and month lengths follow a fixed 153-days-per-5-months pattern.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days from 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, 0..399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of March-based year, 0..365
    let mp = (5 * doy + 2) / 153; // March-based month, 0..11
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Formats `t` with C `strftime` codes. `%-d`-style (no padding) is accepted as glibc does;
/// unknown codes are written back unchanged, as glibc does.
pub(crate) fn format(t: &DateTime, fmt: &str) -> String {
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let no_pad = chars.peek() == Some(&'-');
        if no_pad {
            chars.next();
        }
        let Some(code) = chars.next() else {
            out.push('%');
            if no_pad {
                out.push('-');
            }
            break;
        };
        let num = |v: i64, width: usize| {
            if no_pad {
                v.to_string()
            } else {
                format!("{v:0width$}")
            }
        };
        let hour12 = match t.hour % 12 {
            0 => 12,
            h => h,
        };
        let piece = match code {
            'a' => DAYS[t.weekday as usize][..3].to_string(),
            'A' => DAYS[t.weekday as usize].to_string(),
            'b' | 'h' => MONTHS[(t.month - 1) as usize][..3].to_string(),
            'B' => MONTHS[(t.month - 1) as usize].to_string(),
            'd' => num(t.day.into(), 2),
            'e' => {
                if no_pad {
                    t.day.to_string()
                } else {
                    format!("{:2}", t.day)
                }
            }
            'm' => num(t.month.into(), 2),
            'y' => num(t.year.rem_euclid(100), 2),
            'Y' => t.year.to_string(),
            'H' => num(t.hour.into(), 2),
            'I' => num(hour12.into(), 2),
            'M' => num(t.minute.into(), 2),
            'S' => num(t.second.into(), 2),
            'p' => if t.hour < 12 { "AM" } else { "PM" }.to_string(),
            'j' => num(t.yearday.into(), 3),
            'w' => t.weekday.to_string(),
            'u' => (if t.weekday == 0 { 7 } else { t.weekday }).to_string(),
            'F' => format(t, "%Y-%m-%d"),
            'D' => format(t, "%m/%d/%y"),
            'T' => format(t, "%H:%M:%S"),
            'R' => format(t, "%H:%M"),
            'c' => format(t, "%a %b %e %H:%M:%S %Y"),
            'x' => format(t, "%m/%d/%y"),
            'X' => format(t, "%H:%M:%S"),
            'Z' => "UTC".to_string(),
            'z' => "+0000".to_string(),
            'n' => "\n".to_string(),
            't' => "\t".to_string(),
            '%' => "%".to_string(),
            other => format!("%{}{other}", if no_pad { "-" } else { "" }),
        };
        out.push_str(&piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        // 2024-02-29 13:05:09 UTC, a Thursday, day 60 of a leap year.
        let t = DateTime::from_unix(1_709_211_909);
        assert_eq!(
            t,
            DateTime {
                year: 2024,
                month: 2,
                day: 29,
                hour: 13,
                minute: 5,
                second: 9,
                weekday: 4,
                yearday: 60
            }
        );
        assert_eq!(format(&t, "%d %b %Y"), "29 Feb 2024");
        assert_eq!(
            format(&t, "%A, %B %-d, %Y %I:%M %p"),
            "Thursday, February 29, 2024 01:05 PM"
        );
        assert_eq!(
            format(&t, "%F %T %j %y %% %Q"),
            "2024-02-29 13:05:09 060 24 % %Q"
        );
        assert_eq!(DateTime::from_unix(0).weekday, 4);
        let end = DateTime::from_unix(1_735_689_599); // 2024-12-31 23:59:59
        assert_eq!(
            (end.year, end.month, end.day, end.yearday),
            (2024, 12, 31, 366)
        );
        let before_epoch = DateTime::from_unix(-1); // 1969-12-31 23:59:59, a Wednesday
        assert_eq!(
            (
                before_epoch.year,
                before_epoch.month,
                before_epoch.day,
                before_epoch.weekday
            ),
            (1969, 12, 31, 3)
        );
    }
}
