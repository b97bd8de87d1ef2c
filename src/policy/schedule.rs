//! Schedules: days of the week and time windows in a time zone, such as "weekdays over
//! lunch in Europe/London". A window that crosses midnight belongs to the day it starts.

use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::config::{ConfigError, Locator, ScheduleConfig, Seg};

#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    /// Monday first.
    days: [bool; 7],
    /// Minutes after midnight: `[start, end)`; `start > end` crosses midnight.
    windows: Vec<(u16, u16)>,
    tz: TimeZone,
    pub tz_name: String,
}

impl Schedule {
    pub fn compile(
        name: &str,
        cfg: &ScheduleConfig,
        loc: &Locator,
    ) -> Result<Schedule, ConfigError> {
        let at = |key: &'static str, i: Option<usize>| -> Vec<Seg<'_>> {
            let mut v = vec![Seg::Key("schedule"), Seg::Key(name), Seg::Key(key)];
            if let Some(i) = i {
                v.push(Seg::Index(i));
            }
            v
        };
        let locate = |key: &'static str, i: usize, many: bool, msg: String| {
            loc.error(&at(key, many.then_some(i)), msg)
        };

        let mut days = [cfg.days.0.is_empty(); 7];
        let many_days = cfg.days.0.len() > 1 || loc.span(&at("days", Some(0))).is_some();
        for (i, d) in cfg.days.0.iter().enumerate() {
            let set: &[usize] = match d.to_ascii_lowercase().as_str() {
                "mon" | "monday" => &[0],
                "tue" | "tuesday" => &[1],
                "wed" | "wednesday" => &[2],
                "thu" | "thursday" => &[3],
                "fri" | "friday" => &[4],
                "sat" | "saturday" => &[5],
                "sun" | "sunday" => &[6],
                "weekdays" => &[0, 1, 2, 3, 4],
                "weekend" => &[5, 6],
                _ => {
                    return Err(locate(
                        "days",
                        i,
                        many_days,
                        format!("`{d}` is not a day: use mon, tue, wed, thu, fri, sat, sun, weekdays or weekend"),
                    ))
                }
            };
            for &n in set {
                days[n] = true;
            }
        }

        let mut windows = Vec::new();
        let many_hours = cfg.hours.0.len() > 1 || loc.span(&at("hours", Some(0))).is_some();
        for (i, h) in cfg.hours.0.iter().enumerate() {
            let w = parse_window(h).ok_or_else(|| {
                locate(
                    "hours",
                    i,
                    many_hours,
                    format!("`{h}` is not a time window like \"12:00-14:00\" or \"22:00-06:00\""),
                )
            })?;
            windows.push(w);
        }
        if windows.is_empty() {
            windows.push((0, 24 * 60));
        }

        let (tz, tz_name) = match &cfg.timezone {
            Some(zone) => match TimeZone::get(zone) {
                Ok(tz) => (tz, zone.clone()),
                Err(_) => {
                    return Err(loc.error(
                        &at("timezone", None),
                        format!("`{zone}` is not an IANA time zone such as Europe/London"),
                    ))
                }
            },
            None => {
                let tz = TimeZone::system();
                let name = tz.iana_name().unwrap_or("the system time zone").to_string();
                (tz, name)
            }
        };
        Ok(Schedule {
            name: name.to_string(),
            days,
            windows,
            tz,
            tz_name,
        })
    }

    /// Does the schedule hold at this instant?
    pub fn contains(&self, at: Timestamp) -> bool {
        let local = at.to_zoned(self.tz.clone());
        let day = local.weekday().to_monday_zero_offset() as usize;
        let yesterday = (day + 6) % 7;
        let minute = local.hour() as u16 * 60 + local.minute() as u16;
        self.windows.iter().any(|&(start, end)| {
            if start < end {
                self.days[day] && minute >= start && minute < end
            } else {
                (self.days[day] && minute >= start) || (self.days[yesterday] && minute < end)
            }
        })
    }
}

fn parse_window(text: &str) -> Option<(u16, u16)> {
    let (a, b) = text.split_once('-')?;
    let start = parse_clock(a.trim())?;
    let end = parse_clock(b.trim())?;
    if start == end || start == 24 * 60 {
        return None;
    }
    Some((start, end))
}

fn parse_clock(text: &str) -> Option<u16> {
    let (h, m) = text.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return None;
    }
    Some(h * 60 + m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Names, Source};

    fn schedule(days: &[&str], hours: &[&str], tz: &str) -> Schedule {
        let cfg = ScheduleConfig {
            days: Names(days.iter().map(|s| s.to_string()).collect()),
            hours: Names(hours.iter().map(|s| s.to_string()).collect()),
            timezone: Some(tz.to_string()),
        };
        let src = Source::default();
        Schedule::compile("t", &cfg, &Locator::new(&src)).unwrap()
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn weekday_lunch_in_london_across_dst() {
        let lunch = schedule(&["weekdays"], &["12:00-14:00"], "Europe/London");
        // Winter: London is UTC.
        assert!(lunch.contains(at("2026-01-14T12:30:00Z")));
        assert!(!lunch.contains(at("2026-01-14T14:00:00Z")));
        // Summer: London is UTC+1, so 11:30 UTC is 12:30 local.
        assert!(lunch.contains(at("2026-07-15T11:30:00Z")));
        assert!(lunch.contains(at("2026-07-15T12:30:00Z"))); // 13:30 BST
        assert!(!lunch.contains(at("2026-07-15T13:00:00Z"))); // 14:00 BST
                                                              // Saturday.
        assert!(!lunch.contains(at("2026-07-18T11:30:00Z")));
    }

    #[test]
    fn windows_crossing_midnight_belong_to_their_start_day() {
        let late = schedule(&["fri"], &["22:00-06:00"], "UTC");
        assert!(late.contains(at("2026-11-20T23:00:00Z"))); // Friday night
        assert!(late.contains(at("2026-11-21T05:59:00Z"))); // Saturday early, started Friday
        assert!(!late.contains(at("2026-11-21T06:00:00Z")));
        assert!(!late.contains(at("2026-11-20T05:00:00Z"))); // Friday early: Thursday not listed
        assert!(!late.contains(at("2026-11-21T23:00:00Z"))); // Saturday night
    }

    #[test]
    fn dst_change_night_keeps_local_time() {
        // Clocks go forward at 01:00 UTC on 2026-03-29 in London.
        let night = schedule(&[], &["00:30-02:30"], "Europe/London");
        assert!(night.contains(at("2026-03-29T00:45:00Z"))); // 00:45 GMT
        assert!(night.contains(at("2026-03-29T01:15:00Z"))); // 02:15 BST
        assert!(!night.contains(at("2026-03-29T01:45:00Z"))); // 02:45 BST
    }

    #[test]
    fn bad_windows_are_refused() {
        for w in [
            "12-14",
            "12:00",
            "25:00-26:00",
            "12:00-12:00",
            "12:60-13:00",
            "24:00-01:00",
        ] {
            assert!(parse_window(w).is_none(), "{w}");
        }
        assert_eq!(parse_window("22:00-24:00"), Some((1320, 1440)));
    }
}
