//! Words in a step's text that say something the procedure format can express (downtime,
//! read-only, a backup, the load balancer, a point of no return...), in the languages of the
//! runbooks flightdeck was built from (English, Korean, Japanese). Each becomes a `# REVIEW:`
//! hint in the draft; none is applied as a setting, since the words may not mean it.

/// One hint: what to consider, and the word in the runbook that raised it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    pub word: String,
    pub advice: &'static str,
}

struct Rule {
    words: &'static [&'static str],
    advice: &'static str,
}

const RULES: &[Rule] = &[
    Rule {
        words: &[
            "downtime",
            "down time",
            "다운 타임",
            "다운타임",
            "ダウンタイム",
        ],
        advice: "the runbook mentions downtime: set `downtime = \"writes\"` or `\"full\"` on the \
                 step where it starts",
    },
    Rule {
        words: &[
            "read-only",
            "read only",
            "readonly",
            "읽기 전용",
            "読み取り専用",
        ],
        advice: "read-only: writes stop here (`downtime = \"writes\"`?); undo = back to \
                 read/write",
    },
    Rule {
        words: &["backup", "back up", "백업", "バックアップ"],
        advice: "a backup: a `call` the target binds (e.g. `backup`), kept for the rollback",
    },
    Rule {
        words: &["restore", "복원", "リストア"],
        advice: "a restore overwrites data: `confirm = \"phrase\"`? is it the point of no \
                 return (`irreversible = \"why\"`)?",
    },
    Rule {
        words: &[
            "load balancer",
            "load-balancer",
            "로드 밸런서",
            "ロードバランサ",
        ],
        advice: "the load balancer: an `lb` action (`state = \"drain\"`/`\"ready\"`) through \
                 the target's driver",
    },
    Rule {
        words: &["stop", "shut down", "shutdown", "종료", "중지", "停止"],
        advice: "takes something out of service: an undo (start it again) and a gate that it \
                 is really down",
    },
    Rule {
        words: &["restart", "start", "reboot", "시작", "起動", "再起動"],
        advice: "starts something: follow it with a `wait` gate (a probe) until it is healthy",
    },
    Rule {
        words: &["verify", "check", "make sure", "확인", "確認"],
        advice: "a check: a `wait` gate with a probe or an `http` check the engine verifies",
    },
    Rule {
        words: &[
            "migrat",
            "allow_upgrade",
            "마이그레이션",
            "マイグレーション",
        ],
        advice: "a migration: is this the point of no return (`irreversible = \"why\"`)?",
    },
    Rule {
        words: &["repeat", "for each", "each node", "반복", "繰り返"],
        advice: "a repetition: a `for_each` loop over the nodes (`[loops.NAME]`)",
    },
    Rule {
        words: &["optional", "if needed", "필요한 경우", "선택 사항", "任意"],
        advice: "optional: `optional = \"why\"` with `optional_default = \"run\"` or `\"skip\"`",
    },
];

/// The hints a step's text raises, each rule once, in the rules' order.
pub fn hints(text: &str) -> Vec<Hint> {
    let lower = text.to_lowercase();
    RULES
        .iter()
        .filter_map(|r| {
            r.words
                .iter()
                .find(|w| contains_word(&lower, w))
                .map(|w| Hint {
                    word: (*w).to_string(),
                    advice: r.advice,
                })
        })
        .collect()
}

/// An English keyword matches at a word start (`stop` in "stopped", not in "nonstop"); the
/// others (Korean, Japanese) anywhere.
fn contains_word(text: &str, word: &str) -> bool {
    if !word.is_ascii() {
        return text.contains(word);
    }
    text.match_indices(word).any(|(i, _)| {
        text[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric())
    })
}
