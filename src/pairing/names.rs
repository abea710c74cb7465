//! Session names people can say out loud: `blue-otter-42`.

use std::time::{SystemTime, UNIX_EPOCH};

const ADJECTIVES: &[&str] = &[
    "amber", "bold", "blue", "brisk", "calm", "clear", "coral", "crisp", "dusty", "eager", "fair",
    "gentle", "golden", "green", "grey", "jolly", "keen", "lucky", "mellow", "misty", "noble",
    "olive", "plain", "quiet", "rapid", "red", "rosy", "silver", "steady", "sunny", "swift",
    "tidy", "warm", "wise", "young", "zesty",
];

const ANIMALS: &[&str] = &[
    "badger", "beaver", "bison", "crane", "dingo", "eagle", "falcon", "ferret", "finch", "fox",
    "gecko", "heron", "ibis", "koala", "lemur", "lynx", "marten", "moose", "newt", "otter", "owl",
    "panda", "puffin", "quail", "raven", "robin", "seal", "stoat", "swan", "tapir", "tern",
    "viper", "walrus", "wombat", "yak", "zebra",
];

/// A fresh name like `blue-otter-42`. Not unique by itself: the server refuses a name in use,
/// and the caller picks another.
pub fn generate() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    // Mix time and pid so two sessions started in the same instant still differ.
    let mut x = nanos ^ (u64::from(std::process::id()) << 32) ^ 0x9e37_79b9_7f4a_7c15;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    let adj = ADJECTIVES[(x % ADJECTIVES.len() as u64) as usize];
    let animal = ANIMALS[((x >> 16) % ANIMALS.len() as u64) as usize];
    let n = (x >> 40) % 100;
    format!("{adj}-{animal}-{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_readable_and_valid_session_names() {
        for _ in 0..50 {
            let n = generate();
            let parts: Vec<&str> = n.split('-').collect();
            assert_eq!(parts.len(), 3, "{n}");
            assert!(ADJECTIVES.contains(&parts[0]) && ANIMALS.contains(&parts[1]));
            assert!(parts[2].parse::<u8>().unwrap() < 100);
            crate::pairing::runtime_dir::validate_name(&n).unwrap();
        }
    }
}
