//! The loaders of UCI HHAR, WISDM AR/AT, uWave, UCI HAPT and tabular data, and the window cache.
//!
//! HHAR, WISDM and uWave run on small files written in the exact published formats, quirks included;
//! UCI HAPT, the seglearn watch table (via `tabular`) and UCI HAR also run on the real copies under
//! `$CODATS_DATA_DIR` (default `../shared/data`), and fail if those are missing. Every malformed
//! input must give an error naming the file and the line, or a counted skip where the reference skips.

mod common;

use std::path::{Path, PathBuf};

use codats::data::card::Card;
use codats::data::formats::tabular::{self, TabularOptions};
use codats::data::formats::{hapt, hhar, uwave, wisdm};
use codats::data::registry::{self, CacheStatus, DataOptions, DatasetName, LoadOptions};
use codats::data::window::{LabelRule, WindowSpec};
use codats::data::{DataError, Dataset};
use codats::problem::Problem;
use common::loaders::*;
use common::TempDir;

fn card(name: &str) -> Card {
    Card::builtin(name).expect("builtin card")
}

/// A builtin card with some text replaced (smaller windows or thresholds for tiny fixtures).
fn card_with(name: &str, edits: &[(&str, &str)]) -> Card {
    let mut text = Card::builtin_text(name).to_string();
    for (from, to) in edits {
        assert!(text.contains(from), "{from:?} not in the {name} card");
        text = text.replace(from, to);
    }
    Card::from_toml(name, &text).expect("edited card parses")
}

fn err_text<T: std::fmt::Debug>(r: Result<T, DataError>) -> String {
    r.expect_err("expected an error").to_string()
}

/// Window `i` of domain `id`, `[channel][t]` flattened.
fn window(ds: &Dataset, id: u32, i: usize) -> &[f32] {
    let n = ds.channels * ds.length;
    &ds.domain(id).expect("domain").x[i * n..(i + 1) * n]
}

// ---------------------------------------------------------------- UCI HHAR

/// Rows of the HHAR fixture and, per user letter, the row indexes of its labelled rows.
/// User a: 300 labelled rows (stand for its first 128, then walk) with a null row after every 10th;
/// user b: 256 rows (bike, its 128th sit, its last stairsdown), interleaved with a's; user c: nulls only.
fn hhar_rows() -> (Vec<(&'static str, &'static str)>, Vec<usize>, Vec<usize>) {
    let mut rows = Vec::new();
    let (mut a_idx, mut b_idx) = (Vec::new(), Vec::new());
    let mut push_a = |rows: &mut Vec<(&'static str, &'static str)>, k: usize| {
        a_idx.push(rows.len());
        rows.push(("a", if k < 128 { "stand" } else { "walk" }));
        if k % 10 == 9 {
            rows.push(("a", "null"));
        }
    };
    for k in 0..100 {
        push_a(&mut rows, k);
    }
    let b_label = |k: usize| match k {
        127 => "sit",
        255 => "stairsdown",
        _ => "bike",
    };
    for k in 0..128 {
        b_idx.push(rows.len());
        rows.push(("b", b_label(k)));
    }
    for k in 100..300 {
        push_a(&mut rows, k);
    }
    for k in 128..256 {
        b_idx.push(rows.len());
        rows.push(("b", b_label(k)));
    }
    for _ in 0..20 {
        rows.push(("c", "null"));
    }
    (rows, a_idx, b_idx)
}

/// The fixture CSV, with the header repeated once in the middle (as the reference tolerates).
fn hhar_csv() -> String {
    let (rows, _, _) = hhar_rows();
    let text = hhar_text(&rows);
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(200, HHAR_HEADER);
    lines.join("\n") + "\n"
}

#[test]
fn hhar_windows_each_user_like_the_reference() {
    let tmp = TempDir::new("hhar-folder");
    write(
        &tmp.path()
            .join("Activity recognition exp/Phones_accelerometer.csv"),
        hhar_csv(),
    );
    let (ds, report) = hhar::load(tmp.path(), &card("ucihhar")).expect("loads");
    let (_, a_idx, b_idx) = hhar_rows();
    assert_eq!((ds.channels, ds.length, ds.zscore), (3, 128, true));
    assert_eq!(
        ds.class_names,
        ["bike", "sit", "stand", "walk", "stairsup", "stairsdown"]
    );
    // a: 300 rows -> starts 0 and 128 (256 would need 384); b: 256 rows -> only start 0, because the
    // reference cuts a window only while start < rows - 128.
    assert_eq!(ds.domain_ids(), [0, 1]);
    assert_eq!(ds.domain(0).unwrap().y, [2, 3]); // a-row 127 stand, a-row 255 walk
    assert_eq!(ds.domain(1).unwrap().y, [1]); // b-row 127 sit
                                              // Values: [channel][t], t = the user's labelled rows in file order.
    let w = window(&ds, 0, 1);
    for t in [0, 5, 127] {
        for c in 0..3 {
            assert_eq!(
                w[c * 128 + t],
                value_f32(a_idx[128 + t], c),
                "a window 1, c {c}, t {t}"
            );
        }
    }
    let w = window(&ds, 1, 0);
    assert_eq!(w[2 * 128 + 127], value_f32(b_idx[127], 2));
    // Skips are counted, never silent.
    assert_eq!(report.skipped_for("gt is null (unlabelled)"), 30 + 20);
    assert_eq!(report.skipped_for("repeated header line"), 1);
    assert_eq!(report.rows, 300 + 30 + 256 + 20);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("c (0 labelled rows)")),
        "{:?}",
        report.notes
    );
}

#[test]
fn hhar_reads_the_published_zip_without_extracting() {
    let tmp = TempDir::new("hhar-zip");
    let csv = hhar_csv();
    write(&tmp.path().join("csv/Phones_accelerometer.csv"), &csv);
    let watch = hhar_text(&[("a", "walk")]);
    write_zip(
        &tmp.path().join("zip/Activity recognition exp.zip"),
        &[
            (
                "Activity recognition exp/Watch_accelerometer.csv",
                watch.as_bytes(),
            ),
            (
                "Activity recognition exp/Phones_accelerometer.csv",
                csv.as_bytes(),
            ),
        ],
    );
    let c = card("ucihhar");
    // --data-dir may be the extracted folder itself, the CSV itself, or the folder holding the zip.
    let (a, _) = hhar::load(&tmp.path().join("csv"), &c).expect("folder");
    let (b, report) = hhar::load(&tmp.path().join("zip"), &c).expect("zip");
    let (d, _) = hhar::load(&tmp.path().join("csv/Phones_accelerometer.csv"), &c).expect("file");
    common::assert_same(&a, &b);
    common::assert_same(&a, &d);
    assert!(report.inputs[0].starts_with("Activity recognition exp/Phones_accelerometer.csv in "));
    let e = err_text(hhar::load(&tmp.path().join("nothing-here"), &c));
    assert!(e.contains("codats datasets download ucihhar"), "{e}");
}

#[test]
fn hhar_malformed_lines_name_file_line_and_value() {
    let c = card("ucihhar");
    let parse = |text: &str| err_text(hhar::parse(&mut text.as_bytes(), "P.csv", &c));
    let good = hhar_text(&[("a", "walk"), ("b", "sit"), ("a", "null")]);
    let edit = |line: usize, f: &dyn Fn(&str) -> String| -> String {
        good.lines()
            .enumerate()
            .map(|(i, l)| if i + 1 == line { f(l) } else { l.to_string() })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        parse(&edit(3, &|l| l.replace(",b,", ",z,"))),
        "P.csv: line 3: unknown User \"z\"; expected one of a, b, c, d, e, f, g, h, i"
    );
    assert_eq!(
        parse(&edit(2, &|l| l.replace("walk", "run"))),
        "P.csv: line 2: unknown activity gt \"run\"; expected one of bike, sit, stand, walk, stairsup, stairsdown or null"
    );
    let bad_x = edit(3, &|l| {
        let mut f: Vec<String> = l.split(',').map(String::from).collect();
        f[3] = "1.2.3".into();
        f.join(",")
    });
    assert_eq!(
        parse(&bad_x),
        "P.csv: line 3: x value \"1.2.3\" is not a number"
    );
    let nan = edit(2, &|l| {
        let mut f: Vec<String> = l.split(',').map(String::from).collect();
        f[5] = "NaN".into();
        f.join(",")
    });
    assert_eq!(parse(&nan), "P.csv: line 2: z value \"NaN\" is not finite");
    let e = parse(&edit(3, &|l| l.replacen(',', ";", 1)));
    assert!(
        e.starts_with("P.csv: line 3: expected 10 comma-separated fields"),
        "{e}"
    );
    assert_eq!(
        parse(&edit(3, &|_| String::new())),
        "P.csv: line 3: blank line; expected 10 comma-separated fields"
    );
    let e = parse(&edit(1, &|l| l.replace("gt", "label")));
    assert!(e.starts_with("P.csv: line 1: expected the header"), "{e}");
    // A null row's values are never read (the reference drops it first), but its user must be known.
    let junk_null = edit(4, &|l| l.replace(",a,", ",q,"));
    assert!(parse(&junk_null).starts_with("P.csv: line 4: unknown User \"q\""));
    // Too little data for one window of any user.
    let e = err_text(hhar::parse(&mut good.as_bytes(), "P.csv", &c));
    assert!(e.contains("no windows"), "{e}");
}

// ---------------------------------------------------------------- WISDM

/// The WISDM AR card with windows of 4 and a threshold of 5 records, for tiny fixtures.
fn tiny_wisdm() -> Card {
    card_with(
        "wisdm_ar",
        &[
            ("length = 128\nstride = 128", "length = 4\nstride = 4"),
            ("user_threshold = 19200", "user_threshold = 5"),
        ],
    )
}

#[test]
fn wisdm_quirks_are_handled_and_counted() {
    let mut lines: Vec<String> = Vec::new();
    // User 33: 12 records (Walking for 6, then Jogging), with every published quirk between them.
    for i in 0..12 {
        lines.push(wisdm_record(
            33,
            if i < 6 { "Walking" } else { "Jogging" },
            i,
        ));
        match i {
            1 => lines.push(String::new()),   // blank line
            2 => lines.push("577,,;".into()), // missing fields
            3 => lines.push("33,Walking,1867172313000,4.4,4.4,;".into()), // empty z (counted by the reference's threshold)
            4 => lines.push(format!(
                "{}{}",
                wisdm_record(33, "Walking", 100),
                wisdm_record(33, "Walking", 101)
            )), // two records on one line
            5 => lines.push("33,Walking,1,2,3,4,5,6;".into()),            // too many fields
            _ => {}
        }
    }
    // A trailing comma is kept (7 fields, the last empty); so is a non-empty 7th field (ignored).
    lines.push("33,Jogging,117687701514000,3.17,9,1.23,;".into());
    lines.push("33,Jogging,117687701514001,3.17,9,1.23,99;".into());
    // User 7: 5 records -> not more than the threshold of 5; user 2: 7 records -> kept.
    for i in 0..5 {
        lines.push(wisdm_record(7, "Sitting", 200 + i));
    }
    for i in 0..7 {
        lines.push(format!("  {}\r", wisdm_record(2, "Standing", 300 + i)));
    }
    let text = lines.join("\n") + "\n";
    let (ds, report) =
        wisdm::parse(&mut text.as_bytes(), "raw.txt", &tiny_wisdm(), false).expect("parses");
    assert_eq!(report.skipped_for("blank line"), 1);
    assert_eq!(report.skipped_for("missing fields (fewer than 6)"), 1);
    assert_eq!(report.skipped_for("empty x, y or z value"), 1);
    assert_eq!(report.skipped_for("several records on one line"), 1);
    assert_eq!(report.skipped_for("more than 7 fields"), 1);
    assert_eq!(report.skipped_rows(), 5);
    assert_eq!(report.rows, 14 + 5 + 7);
    let notes = report.notes.join("\n");
    assert!(
        notes.contains("1 records had a non-empty 7th field"),
        "{notes}"
    );
    assert!(notes.contains("kept 2 of 3 users"), "{notes}");
    assert!(notes.contains("dropped users: 7 (5 records)"), "{notes}");
    assert!(notes.contains("domain = WISDM user: 0=2 1=33"), "{notes}");
    // User 2 (domain 0): 7 records -> one window (start 4 would need 9 records, reference bound).
    // User 33 (domain 1): 14 records -> starts 0, 4, 8 (12 needs 17).
    assert_eq!(ds.domain_ids(), [0, 1]);
    assert_eq!(ds.domain(0).unwrap().y, [3]);
    assert_eq!(ds.domain(1).unwrap().y, [0, 1, 1]);
    // Window values: user 33's records in file order, quirk lines left out.
    let w = window(&ds, 1, 1);
    assert_eq!(w[0], value_f32(4, 0)); // record 4, x
    assert_eq!(w[4 + 3], value_f32(7, 1)); // record 7, y
                                           // With the threshold off, user 7 is a domain too.
    let (all, report) =
        wisdm::parse(&mut text.as_bytes(), "raw.txt", &tiny_wisdm(), true).expect("parses");
    assert_eq!(all.domain_ids(), [0, 1, 2]);
    assert!(
        report.notes.iter().any(|n| n.contains("0=2 1=7 2=33")),
        "{:?}",
        report.notes
    );
}

#[test]
fn wisdm_user_threshold_is_the_references() {
    // The reference keeps a user when (records - 1) > 19200, counting records with an empty z too.
    let mut text = String::new();
    for i in 0..19201 {
        text.push_str(&wisdm_record(5, "Walking", i));
        text.push('\n');
        text.push_str(&wisdm_record(9, "Upstairs", i));
        text.push('\n');
    }
    text.push_str("5,Walking,1867172313000,4.4,4.4,;\n"); // user 5's 19202nd counted record
    let (ds, report) =
        wisdm::parse(&mut text.as_bytes(), "raw.txt", &card("wisdm_ar"), false).expect("parses");
    assert_eq!(ds.domain_ids(), [0]);
    assert!(
        report.notes.iter().any(|n| n.contains("0=5")),
        "{:?}",
        report.notes
    );
    assert!(report
        .notes
        .iter()
        .any(|n| n.contains("dropped users: 9 (19201 records)")));
    // 19201 usable records: windows start every 128 while start < 19201 - 128.
    assert_eq!(ds.domain(0).unwrap().len(), 150);
}

#[test]
fn wisdm_at_reads_its_member_from_the_tar_gz() {
    let tmp = TempDir::new("wisdm-at");
    let mut text = String::new();
    let acts = [
        "Walking",
        "Jogging",
        "Stairs",
        "Sitting",
        "Standing",
        "LyingDown",
    ];
    for i in 0..300 {
        text.push_str(&wisdm_record(1600 + (i % 2) as u32, acts[(i / 20) % 6], i));
        text.push('\n');
    }
    write_tar_gz(
        &tmp.path().join("WISDM_at_latest.tar.gz"),
        &[
            (
                "home/share/data/public_sets/WISDM_at_v2.0/readme.txt",
                b"about",
            ),
            (
                "home/share/data/public_sets/WISDM_at_v2.0/WISDM_at_v2.0_raw.txt",
                text.as_bytes(),
            ),
        ],
    );
    let (ds, report) = wisdm::load(tmp.path(), &card("wisdm_at"), true).expect("loads");
    assert_eq!(ds.class_names, acts);
    assert_eq!(ds.domain_ids(), [0, 1]);
    assert_eq!(ds.domain(0).unwrap().len(), 1); // 150 records -> one window of 128
    assert!(report.inputs[0].contains("WISDM_at_v2.0_raw.txt in "));
    // With the default threshold nobody has enough records: an error that says how to keep them.
    let e = err_text(wisdm::load(tmp.path(), &card("wisdm_at"), false));
    assert!(e.contains("--wisdm-all-users"), "{e}");
}

#[test]
fn wisdm_malformed_values_name_file_line_and_value() {
    let c = tiny_wisdm();
    let parse = |line: &str| {
        let text = format!("{}\n{line}\n", wisdm_record(1, "Walking", 0));
        err_text(wisdm::parse(&mut text.as_bytes(), "raw.txt", &c, true))
    };
    assert_eq!(
        parse("x1,Walking,0,1,2,3;"),
        "raw.txt: line 2: user id \"x1\" is not an integer"
    );
    assert_eq!(
        parse("1,Running,0,1,2,3;"),
        "raw.txt: line 2: unknown activity \"Running\"; expected one of Walking, Jogging, Sitting, Standing, Upstairs, Downstairs"
    );
    assert_eq!(
        parse("1,Walking,0,1,2.5.1,3;"),
        "raw.txt: line 2: y value \"2.5.1\" is not a finite number"
    );
}

// ---------------------------------------------------------------- uWave

/// Users 1 and 2, days 1 and 2, a few gestures of 3..=40 samples; one file lacks its repeat index.
fn uwave_tree(root: &Path) -> Vec<(u32, u32, usize)> {
    let mut made = Vec::new();
    let files = [
        (1, 1, "A_Template_Acceleration1-1.txt", 30),
        (1, 1, "A_Template_Acceleration1-2.txt", 31),
        (1, 2, "A_Template_Acceleration2-1.txt", 40),
        (1, 2, "A_Template_Acceleration8-.txt", 3),
        (1, 2, "A_Template_Acceleration3-1.txt", 12),
        (2, 1, "C_Template_Acceleration1-1.txt", 25),
        (2, 1, "C_Template_Acceleration2-1.txt", 26),
        (2, 1, "C_Template_Acceleration2-2.txt", 27),
        (2, 2, "C_Template_Acceleration1-3.txt", 28),
        (2, 2, "C_Template_Acceleration8-1.txt", 29),
    ];
    for (k, (user, day, name, n)) in files.iter().enumerate() {
        write(
            &root.join(format!("U{user} ({day})")).join(name),
            uwave_gesture(*n, k),
        );
        let gesture: u32 = name
            .trim_end_matches(".txt")
            .rsplit_once('-')
            .unwrap()
            .0
            .chars()
            .last()
            .unwrap()
            .to_digit(10)
            .unwrap();
        made.push((*user, gesture - 1, *n));
    }
    write(&root.join("U1 (1)/notes.txt"), "not a gesture");
    made
}

#[test]
fn uwave_gestures_are_padded_and_normalised_per_user_before_padding() {
    let tmp = TempDir::new("uwave");
    let made = uwave_tree(tmp.path());
    let (ds, report) = uwave::load(tmp.path(), &card("uwave")).expect("loads");
    assert_eq!((ds.channels, ds.length), (3, 315));
    assert_eq!(ds.domain_ids(), [1, 2]);
    assert_eq!(report.rows, made.iter().map(|m| m.2 as u64).sum::<u64>());
    // Sorted file order within each user: U1 (1)/...1-1, 1-2, U1 (2)/...2-1, 3-1, 8-.
    let d1 = ds.domain(1).unwrap();
    assert_eq!(d1.y, [0, 0, 1, 2, 7]);
    assert_eq!(d1.valid_lengths.as_deref(), Some(&[30, 31, 40, 12, 3][..]));
    let w = window(&ds, 1, 4); // the 3-sample gesture (file 3): values then zeros, per channel
    assert_eq!(w[0], value_f32(3000, 0));
    assert_eq!(w[315 + 2], value_f32(3002, 1));
    assert!(w[3..315].iter().all(|&v| v == 0.0));
    assert_eq!(ds.domain(2).unwrap().y, [0, 1, 1, 0, 7]);
    // The per-user z-score uses real samples only and keeps padding at zero.
    let p = Problem::new(&ds, &[1], 2, 0).expect("problem");
    for d in p.sources.iter().chain([&p.target]) {
        let lens = ds.domain(d.id).unwrap().valid_lengths.clone().unwrap();
        for (i, &len) in lens.iter().enumerate() {
            for c in 0..3 {
                let row = &d.x[(i * 3 + c) * 315..(i * 3 + c + 1) * 315];
                assert!(row[len as usize..].iter().all(|&v| v == 0.0));
            }
        }
        // Train-split real samples have mean ~0 per channel.
        let mut sum = 0.0f64;
        let mut n = 0usize;
        for &i in &d.split.train {
            let len = lens[i] as usize;
            sum += d.x[i * 3 * 315..i * 3 * 315 + len]
                .iter()
                .map(|&v| v as f64)
                .sum::<f64>();
            n += len;
        }
        assert!(
            (sum / n as f64).abs() < 1e-4,
            "domain {} mean {}",
            d.id,
            sum / n as f64
        );
    }
}

#[test]
fn uwave_rar_files_and_bad_gestures_are_explained() {
    let c = card("uwave");
    let tmp = TempDir::new("uwave-rar");
    write(&tmp.path().join("U1 (1).rar"), b"Rar!\x1a\x07\x00");
    let e = err_text(uwave::load(tmp.path(), &c));
    assert!(e.contains("U1 (1).rar") && e.contains("unrar x"), "{e}");
    let e = err_text(uwave::load(&tmp.path().join("U1 (1).rar"), &c));
    assert!(e.contains("codats cannot read .rar files"), "{e}");

    let tmp = TempDir::new("uwave-flat");
    write(
        &tmp.path().join("A_Template_Acceleration1-1.txt"),
        uwave_gesture(5, 0),
    );
    let e = err_text(uwave::load(tmp.path(), &c));
    assert!(e.contains("not inside a `U<user> (<day>)` folder"), "{e}");

    let tmp = TempDir::new("uwave-bad");
    let f = write(
        &tmp.path().join("U3 (1)/A_Template_Acceleration2-1.txt"),
        "0.1 0.2 0.3\n0.1 oops 0.3\n",
    );
    let e = err_text(uwave::load(tmp.path(), &c));
    assert_eq!(
        e,
        format!(
            "{}: line 2: value \"oops\" is not a finite number",
            f.display()
        )
    );
    write(&f, "0.1 0.2\n");
    let e = err_text(uwave::load(tmp.path(), &c));
    assert_eq!(
        e,
        format!(
            "{}: line 1: expected 3 values (x y z), found 2",
            f.display()
        )
    );
    write(&f, uwave_gesture(316, 0));
    let e = err_text(uwave::load(tmp.path(), &c));
    assert_eq!(
        e,
        format!(
            "{}: 316 samples, more than the 315 gestures are padded to",
            f.display()
        )
    );
    write(&f, uwave_gesture(3, 0));
    std::fs::rename(&f, tmp.path().join("U3 (1)/A_Template_Acceleration9-1.txt")).unwrap();
    let e = err_text(uwave::load(tmp.path(), &c));
    assert!(e.contains("with a gesture 1..8"), "{e}");
}

// ---------------------------------------------------------------- UCI HAPT

/// A two-experiment RawData folder: exp 1 (user 4) 400 samples, exp 2 (user 9) 300 samples.
fn hapt_fixture(root: &Path, labels: &str) {
    for (exp, user, n) in [(1, 4, 400), (2, 9, 300)] {
        for (kind, seed) in [("acc", 0), ("gyro", 7)] {
            let text: String = (0..n)
                .map(|i| {
                    format!(
                        "{:.16e} {:.16e} {:.16e}\n",
                        (i + seed) as f64 * 0.001,
                        -(i as f64) * 0.002,
                        1.0 + seed as f64
                    )
                })
                .collect();
            write(
                &root.join(format!("RawData/{kind}_exp{exp:02}_user{user:02}.txt")),
                text,
            );
        }
    }
    write(&root.join("RawData/labels.txt"), labels);
}

#[test]
fn hapt_windows_stay_inside_labelled_segments() {
    let tmp = TempDir::new("hapt");
    // exp 1: walking 0..=299 (3 windows: 0, 64, 128... 128+127=255, 192+127=319 > 299? no: 192..319
    // exceeds 299, so starts 0, 64, 128), a transition 300..=399 (left out by default);
    // exp 2: laying 10..=137 (exactly one window) and sitting 140..=200 (too short).
    hapt_fixture(
        tmp.path(),
        "1 4 1 0 299\n1 4 7 300 399\n2 9 6 10 137\n2 9 4 140 200\n",
    );
    let c = card("ucihapt");
    let (ds, report) = hapt::load(tmp.path(), &c, false).expect("loads");
    assert_eq!((ds.channels, ds.length, ds.n_classes()), (6, 128, 6));
    assert_eq!(ds.domain_ids(), [4, 9]);
    assert_eq!(ds.domain(4).unwrap().y, [0, 0, 0]);
    assert_eq!(ds.domain(9).unwrap().y, [5]);
    // Channels: acc x, y, z then gyro x, y, z; window 1 of user 4 starts at sample 64.
    let w = window(&ds, 4, 1);
    assert_eq!(w[0], 0.064f32);
    assert_eq!(w[128 + 1], -0.130f32);
    assert_eq!(w[3 * 128], 0.071f32);
    assert_eq!(w[5 * 128], 8.0f32);
    // User 9's window starts at sample 10.
    assert_eq!(window(&ds, 9, 0)[0], 0.010f32);
    let notes = report.notes.join("\n");
    assert!(
        notes.contains("1 segments of postural transitions"),
        "{notes}"
    );
    assert!(
        notes.contains("1 segments shorter than 128 samples"),
        "{notes}"
    );
    assert_eq!(report.rows, 700);
    // With transitions: 12 classes, and the transition segment (100 samples) gives no window.
    let (ds, _) = hapt::load(tmp.path(), &c, true).expect("loads");
    assert_eq!(ds.n_classes(), 12);
    assert_eq!(ds.n_windows(), 4);
    // The folder can also be RawData itself, or a zip of the tree; `.txt.gz` files are read too.
    let (d2, _) = hapt::load(&tmp.path().join("RawData"), &c, false).expect("RawData itself");
    assert_eq!(d2.n_windows(), 4);
}

#[test]
fn hapt_malformed_labels_name_file_and_line() {
    let c = card("ucihapt");
    let cases = [
        (
            "1 4 1 0\n",
            "line 1: expected 5 integers `exp user activity start end`, found 4 values",
        ),
        (
            "1 4 1 0 299\n1 4 x 0 10\n",
            "line 2: value \"x\" is not a non-negative integer",
        ),
        (
            "1 4 1 0 400\n",
            "line 1: segment 0..400 lies outside experiment 1's 400 samples",
        ),
        (
            "1 5 1 0 299\n",
            "line 1: experiment 1 belongs to user 4 (file names), not 5",
        ),
        ("3 4 1 0 299\n", "line 1: experiment 3 has no signal files"),
        ("1 4 13 0 299\n", "line 1: activity 13 outside 1..12"),
        (
            "1 4 1 20 10\n",
            "line 1: segment end 10 is before its start 20",
        ),
    ];
    for (labels, want) in cases {
        let tmp = TempDir::new("hapt-bad");
        hapt_fixture(tmp.path(), labels);
        let e = err_text(hapt::load(tmp.path(), &c, false));
        let file = tmp.path().join("RawData").join("labels.txt");
        assert!(
            e.starts_with(&format!("{}: {want}", file.display())),
            "{labels:?}: {e}"
        );
    }
    let tmp = TempDir::new("hapt-bad-signal");
    hapt_fixture(tmp.path(), "1 4 1 0 299\n");
    let f = write(
        &tmp.path().join("RawData/gyro_exp02_user09.txt"),
        "1 2 3\n4 5\n",
    );
    let e = err_text(hapt::load(tmp.path(), &c, false));
    assert_eq!(
        e,
        format!(
            "{}: line 2: expected 3 values (x y z), found 2",
            f.display()
        )
    );
    write(&f, "1 2 3\n");
    let e = err_text(hapt::load(tmp.path(), &c, false));
    assert!(e.contains("1 lines, but") && e.contains("has 300"), "{e}");
}

#[test]
fn hapt_real_recordings_give_the_expected_windows() {
    let dir = common::real_dataset("ucihapt");
    let c = card("ucihapt");
    let (ds, report) = hapt::load(&dir, &c, false).expect("real HAPT loads");
    assert_eq!(ds.domain_ids(), (1..=30).collect::<Vec<u32>>());
    assert_eq!(ds.n_windows(), 10411);
    assert_eq!(report.rows, 1_122_772);
    assert_eq!(ds.domain(1).unwrap().len(), 347);
    assert_eq!(ds.domain(21).unwrap().len(), 413);
    let mut per_class = [0usize; 6];
    for d in &ds.domains {
        for &y in &d.y {
            per_class[y as usize] += 1;
        }
    }
    assert_eq!(per_class, [1722, 1544, 1407, 1801, 1979, 1958]);
    assert!(ds.domains.iter().all(|d| d.x.iter().all(|v| v.is_finite())));
    // User 1's first window comes from labels.txt's first segment, `1 1 5 250 1232`: standing (class 4).
    assert_eq!(ds.domain(1).unwrap().y[0], 4);
    let (all, _) = hapt::load(&dir, &c, true).expect("with transitions");
    assert_eq!((all.n_classes(), all.n_windows()), (12, 10929));
}

// ---------------------------------------------------------------- tabular

fn watch_options() -> TabularOptions {
    TabularOptions {
        domain_col: "subject".into(),
        label_col: "label_name".into(),
        channels: ["ax", "ay", "az", "wx", "wy", "wz"]
            .map(String::from)
            .to_vec(),
        time_col: Some("sample".into()),
        group_col: Some("series_id".into()),
        window: WindowSpec {
            length: 128,
            stride: 128,
            label: LabelRule::Last,
            reference_bounds: false,
        },
        sample_rate_hz: Some(50.0),
        zscore: true,
    }
}

#[test]
fn tabular_reads_the_real_watch_table() {
    let file = common::real_dataset("seglearn_watch").join("watch_dataset.csv.gz");
    let (ds, report) = tabular::load(&file, &watch_options()).expect("watch table loads");
    assert_eq!(report.rows, 244_102);
    assert_eq!((ds.channels, ds.length), (6, 128));
    assert_eq!(
        ds.class_names,
        ["ABD", "ER", "FEL", "IR", "PEN", "ROW", "TRAP"]
    );
    assert_eq!(ds.domain_ids(), (1..=10).collect::<Vec<u32>>());
    assert_eq!(ds.n_windows(), 1833);
    let per: Vec<usize> = ds.domains.iter().map(|d| d.len()).collect();
    assert_eq!(per, [220, 212, 119, 116, 191, 186, 206, 191, 190, 202]);
    let mut per_class = [0usize; 7];
    for d in &ds.domains {
        for &y in &d.y {
            per_class[y as usize] += 1;
        }
    }
    assert_eq!(per_class, [299, 284, 306, 283, 198, 235, 228]);
    assert!(
        report.notes.iter().any(|n| n.contains("140 recordings")),
        "{:?}",
        report.notes
    );
}

#[test]
fn tabular_groups_time_order_label_rules_and_errors() {
    let tmp = TempDir::new("tabular");
    // Two recordings of participant "p2" and one of "p1"; rows shuffled in time within g1.
    let mut csv = String::from("who,rec,t,a,b,act\n");
    let rows = [
        ("p2", "g1", 2, "run"),
        ("p2", "g1", 0, "walk"),
        ("p2", "g1", 1, "run"),
        ("p2", "g1", 3, "run"),
        ("p2", "g2", 0, "walk"),
        ("p2", "g2", 1, "walk"),
        ("p1", "g3", 0, "walk"),
        ("p1", "g3", 1, "run"),
        ("p1", "g3", 2, "walk"),
        ("p2", "g2", 2, "run"),
    ];
    for (who, rec, t, act) in rows {
        csv.push_str(&format!(
            "{who},{rec},{t},{},{},{act}\n",
            t as f64 + 0.5,
            -(t as f64) - 1.0
        ));
    }
    let file = write(&tmp.path().join("mine.csv"), &csv);
    let mut opts = TabularOptions {
        domain_col: "who".into(),
        label_col: "act".into(),
        channels: vec!["a".into(), "b".into()],
        time_col: Some("t".into()),
        group_col: Some("rec".into()),
        window: WindowSpec {
            length: 2,
            stride: 1,
            label: LabelRule::Last,
            reference_bounds: false,
        },
        sample_rate_hz: None,
        zscore: true,
    };
    let (ds, report) = tabular::load(tmp.path(), &opts).expect("loads (the folder's one table)");
    // Text domains sorted: p1 = 0, p2 = 1. Classes sorted: run = 0, walk = 1.
    assert_eq!(ds.domain_ids(), [0, 1]);
    assert_eq!(ds.class_names, ["run", "walk"]);
    assert!(
        report.notes.iter().any(|n| n.contains("0=p1 1=p2")),
        "{:?}",
        report.notes
    );
    // p2: g1 (4 rows in time order walk, run, run, run) -> 3 windows; g2 (3 rows) -> 2 windows.
    let d = ds.domain(1).unwrap();
    assert_eq!(d.y, [0, 0, 0, 1, 0]);
    assert_eq!(&d.x[..4], [0.5, 1.5, -1.0, -2.0]); // g1 t = 0, 1: a then b
    assert_eq!(ds.domain(0).unwrap().y, [0, 1]);
    // Majority over windows of 3 with ties to the smaller class.
    opts.window = WindowSpec {
        length: 3,
        stride: 3,
        label: LabelRule::Majority,
        reference_bounds: false,
    };
    let (ds, _) = tabular::load(&file, &opts).expect("loads");
    assert_eq!(ds.domain(1).unwrap().y, [0, 1]); // g1 t0..2: walk run run; g2: walk walk run
                                                 // Errors name the column and the row.
    let e = err_text(tabular::load(
        &file,
        &TabularOptions {
            domain_col: "person".into(),
            ..opts.clone()
        },
    ));
    assert!(
        e.contains("no column \"person\"; the columns are \"who\", \"rec\""),
        "{e}"
    );
    let bad = write(
        &tmp.path().join("bad.csv"),
        csv.replace("p1,g3,1,1.5,", "p1,g3,1,,"),
    );
    let e = err_text(tabular::load(&bad, &opts));
    assert_eq!(
        e,
        format!(
            "{}: channel column \"a\" is empty or not a number at row 8 (line 9)",
            bad.display()
        )
    );
    // A value that is no number: the line and column, not polars' multi-line advice.
    let word = write(
        &tmp.path().join("word.csv"),
        csv.replace("p1,g3,1,1.5,", "p1,g3,1,fast,"),
    );
    assert_eq!(
        err_text(tabular::load(&word, &opts)),
        format!(
            "{}: line 9: column a: value \"fast\" is not a number",
            word.display()
        )
    );
    let e = err_text(tabular::load(
        &bad,
        &TabularOptions {
            channels: vec!["a".into(), "a".into()],
            ..opts.clone()
        },
    ));
    assert!(e.contains("named twice"), "{e}");
    std::fs::remove_file(&bad).unwrap();
    // Parquet reads the same as CSV.
    use polars::prelude::SerReader;
    let mut df = polars::prelude::CsvReadOptions::default()
        .with_has_header(true)
        .try_into_reader_with_file_path(Some(file.clone()))
        .unwrap()
        .finish()
        .unwrap();
    let pq = tmp.path().join("sub/mine.parquet");
    std::fs::create_dir_all(pq.parent().unwrap()).unwrap();
    polars::prelude::ParquetWriter::new(std::fs::File::create(&pq).unwrap())
        .finish(&mut df)
        .unwrap();
    let (from_pq, _) = tabular::load(&pq, &opts).expect("parquet");
    let (from_csv, _) = tabular::load(&file, &opts).expect("csv");
    common::assert_same(&from_pq, &from_csv);
}

// ---------------------------------------------------------------- cache

fn cached(name: DatasetName, dir: &Path, cache: &Path, data: DataOptions) -> registry::Loaded {
    registry::open(
        name,
        &LoadOptions {
            data_dir: Some(dir.to_path_buf()),
            offline: true,
            progress: false,
            cache: Some(cache.to_path_buf()),
            data,
        },
    )
    .expect("loads")
}

fn entry(status: &CacheStatus) -> PathBuf {
    match status {
        CacheStatus::Hit(p) | CacheStatus::Written(p) | CacheStatus::Rebuilt(p, _) => p.clone(),
        other => panic!("no cache entry: {other}"),
    }
}

#[test]
fn cache_hits_and_is_rebuilt_when_a_file_or_option_changes() {
    let tmp = TempDir::new("cache");
    let data = tmp.path().join("hhar");
    let cache = tmp.path().join("cache");
    let csv = write(&data.join("Phones_accelerometer.csv"), hhar_csv());
    let first = cached(DatasetName::Ucihhar, &data, &cache, DataOptions::default());
    assert!(
        matches!(first.cache, CacheStatus::Written(_)),
        "{}",
        first.cache
    );
    let second = cached(DatasetName::Ucihhar, &data, &cache, DataOptions::default());
    assert!(
        matches!(second.cache, CacheStatus::Hit(_)),
        "{}",
        second.cache
    );
    assert_eq!(entry(&first.cache), entry(&second.cache));
    common::assert_same(&first.dataset, &second.dataset);
    assert_eq!(first.report, second.report); // the skip counts survive the cache

    // Same size, one digit changed: a different input checksum, so a new entry.
    let text = std::fs::read_to_string(&csv).unwrap();
    let i = text.find(",a,").unwrap() - 1;
    let mut changed = text.into_bytes();
    changed[i] = if changed[i] == b'1' { b'2' } else { b'1' };
    std::fs::write(&csv, &changed).unwrap();
    let third = cached(DatasetName::Ucihhar, &data, &cache, DataOptions::default());
    assert!(
        matches!(third.cache, CacheStatus::Written(_)),
        "{}",
        third.cache
    );
    assert_ne!(entry(&third.cache), entry(&first.cache));

    // A corrupt entry is rebuilt, never trusted.
    std::fs::write(entry(&third.cache), b"garbage").unwrap();
    let fourth = cached(DatasetName::Ucihhar, &data, &cache, DataOptions::default());
    assert!(
        matches!(fourth.cache, CacheStatus::Rebuilt(..)),
        "{}",
        fourth.cache
    );
    common::assert_same(&third.dataset, &fourth.dataset);
    assert!(matches!(
        cached(DatasetName::Ucihhar, &data, &cache, DataOptions::default()).cache,
        CacheStatus::Hit(_)
    ));

    // A changed preprocessing option is a different entry too.
    let hapt = tmp.path().join("hapt");
    hapt_fixture(&hapt, "1 4 1 0 299\n1 4 7 300 399\n");
    let plain = cached(DatasetName::Ucihapt, &hapt, &cache, DataOptions::default());
    let trans = DataOptions {
        hapt_transitions: true,
        ..Default::default()
    };
    let with = cached(DatasetName::Ucihapt, &hapt, &cache, trans.clone());
    assert!(
        matches!(with.cache, CacheStatus::Written(_)),
        "{}",
        with.cache
    );
    assert_ne!(entry(&plain.cache), entry(&with.cache));
    assert_eq!(with.dataset.n_classes(), 12);
    assert!(matches!(
        cached(DatasetName::Ucihapt, &hapt, &cache, trans).cache,
        CacheStatus::Hit(_)
    ));
    let cleared = codats::data::cache::clear(&cache, Some("ucihapt"), None).unwrap();
    assert_eq!(cleared.files, 2);
    assert!(matches!(
        cached(DatasetName::Ucihapt, &hapt, &cache, DataOptions::default()).cache,
        CacheStatus::Written(_)
    ));
}

#[test]
fn ucihar_through_the_registry_is_cached_and_identical() {
    let tmp = TempDir::new("ucihar-cache");
    let dir = common::real_archive_dir();
    let cold = cached(
        DatasetName::Ucihar,
        &dir,
        tmp.path(),
        DataOptions::default(),
    );
    let warm = cached(
        DatasetName::Ucihar,
        &dir,
        tmp.path(),
        DataOptions::default(),
    );
    assert!(matches!(warm.cache, CacheStatus::Hit(_)), "{}", warm.cache);
    assert_eq!(warm.dataset.domains.len(), 30);
    assert_eq!(warm.dataset.n_windows(), 10299);
    assert!(!warm.dataset.zscore);
    common::assert_same(&cold.dataset, &warm.dataset);
}
