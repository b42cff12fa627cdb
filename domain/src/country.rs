//! ISO 3166-1 alpha-2: the 249 officially assigned codes (ISO 3166 Maintenance Agency), plus
//! `XK` (Kosovo), which carriers and the EU use as a user-assigned code.

const CODES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ \
CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR \
GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP \
KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ \
NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW \
SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ \
UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS XK YE YT ZA ZM ZW";

/// Every accepted code, in alphabetical order (the OpenAPI schema lists them).
#[cfg(feature = "openapi")]
pub fn codes() -> impl Iterator<Item = &'static str> {
    CODES.split(' ')
}

/// True when `code` is an assigned alpha-2 code, in upper case.
pub fn is_iso3166_alpha2(code: &str) -> bool {
    // CODES is sorted, each code at a stride of three bytes: a binary search (every shipment
    // registration replayed is checked).
    let code = code.as_bytes();
    let list = CODES.as_bytes();
    if code.len() != 2 {
        return false;
    }
    let (mut lo, mut hi) = (0, list.len().div_ceil(3));
    while lo < hi {
        let mid = (lo + hi) / 2;
        match list[mid * 3..mid * 3 + 2].cmp(code) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => return true,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_list_has_every_assigned_code_once() {
        let codes: Vec<&str> = super::CODES.split(' ').collect();
        assert_eq!(codes.len(), 250);
        let mut sorted = codes.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, codes);
    }

    #[test]
    fn the_search_finds_exactly_the_listed_codes() {
        let codes: Vec<&str> = super::CODES.split(' ').collect();
        for a in 0u8..=255 {
            for b in 0u8..=255 {
                let Ok(code) = std::str::from_utf8(&[a, b]).map(str::to_owned) else {
                    continue;
                };
                assert_eq!(
                    super::is_iso3166_alpha2(&code),
                    codes.contains(&code.as_str()),
                    "{code:?}"
                );
            }
        }
        for code in ["", "D", "DEU", "de", "DE ", " DE"] {
            assert!(!super::is_iso3166_alpha2(code), "{code:?}");
        }
    }
}
