//! Question text normalization: NFKC (full-width letters and digits become ASCII), lower case,
//! and only letters and digits kept — punctuation, spaces and emoji carry no meaning for matching.

use unicode_normalization::UnicodeNormalization;

/// Interchangeable ways of asking, mapped to one spelling (longest first). Only question words
/// and sentence particles: they say nothing about the topic, yet two paraphrases that word them
/// differently lose every bigram around them.
const QUESTION_WORDS: &[(&str, &str)] = &[
    ("可不可以", "能"),
    ("能不能", "能"),
    ("是否可以", "能"),
    ("是不是", "是否"),
    ("怎么样", "怎么"),
    ("怎么办", "怎么"),
    ("为什么", "为何"),
    ("为啥", "为何"),
    ("如何", "怎么"),
    ("怎样", "怎么"),
    ("能否", "能"),
    ("可否", "能"),
    ("可以", "能"),
    ("哪些", "什么"),
    ("咋", "怎么"),
];

/// Common traditional characters and their simplified forms (sorted by the first): members who
/// type traditional Chinese still meet a simplified knowledge base. Not a full converter.
const TRADITIONAL: &[(char, char)] = &[
    ('來', '来'),
    ('係', '系'),
    ('個', '个'),
    ('們', '们'),
    ('備', '备'),
    ('傳', '传'),
    ('價', '价'),
    ('億', '亿'),
    ('優', '优'),
    ('兩', '两'),
    ('冊', '册'),
    ('則', '则'),
    ('劃', '划'),
    ('動', '动'),
    ('務', '务'),
    ('勵', '励'),
    ('區', '区'),
    ('員', '员'),
    ('問', '问'),
    ('啟', '启'),
    ('單', '单'),
    ('嗎', '吗'),
    ('園', '园'),
    ('圖', '图'),
    ('團', '团'),
    ('報', '报'),
    ('場', '场'),
    ('媽', '妈'),
    ('學', '学'),
    ('實', '实'),
    ('寫', '写'),
    ('寶', '宝'),
    ('專', '专'),
    ('對', '对'),
    ('導', '导'),
    ('帳', '账'),
    ('幫', '帮'),
    ('幾', '几'),
    ('廣', '广'),
    ('後', '后'),
    ('從', '从'),
    ('愛', '爱'),
    ('應', '应'),
    ('戶', '户'),
    ('換', '换'),
    ('據', '据'),
    ('於', '于'),
    ('時', '时'),
    ('書', '书'),
    ('會', '会'),
    ('東', '东'),
    ('條', '条'),
    ('業', '业'),
    ('樣', '样'),
    ('機', '机'),
    ('檔', '档'),
    ('檢', '检'),
    ('權', '权'),
    ('歡', '欢'),
    ('氣', '气'),
    ('決', '决'),
    ('沒', '没'),
    ('灣', '湾'),
    ('為', '为'),
    ('無', '无'),
    ('營', '营'),
    ('獎', '奖'),
    ('現', '现'),
    ('產', '产'),
    ('畫', '画'),
    ('療', '疗'),
    ('發', '发'),
    ('碼', '码'),
    ('積', '积'),
    ('約', '约'),
    ('紙', '纸'),
    ('級', '级'),
    ('絡', '络'),
    ('維', '维'),
    ('網', '网'),
    ('線', '线'),
    ('縣', '县'),
    ('繫', '系'),
    ('習', '习'),
    ('聯', '联'),
    ('聽', '听'),
    ('腦', '脑'),
    ('臺', '台'),
    ('與', '与'),
    ('舊', '旧'),
    ('萬', '万'),
    ('處', '处'),
    ('號', '号'),
    ('裡', '里'),
    ('見', '见'),
    ('規', '规'),
    ('視', '视'),
    ('親', '亲'),
    ('覺', '觉'),
    ('訂', '订'),
    ('計', '计'),
    ('設', '设'),
    ('註', '注'),
    ('詢', '询'),
    ('話', '话'),
    ('該', '该'),
    ('認', '认'),
    ('說', '说'),
    ('課', '课'),
    ('請', '请'),
    ('論', '论'),
    ('諮', '咨'),
    ('謝', '谢'),
    ('證', '证'),
    ('議', '议'),
    ('護', '护'),
    ('讀', '读'),
    ('讓', '让'),
    ('貝', '贝'),
    ('貨', '货'),
    ('買', '买'),
    ('費', '费'),
    ('賣', '卖'),
    ('質', '质'),
    ('車', '车'),
    ('軟', '软'),
    ('載', '载'),
    ('辦', '办'),
    ('這', '这'),
    ('週', '周'),
    ('進', '进'),
    ('運', '运'),
    ('過', '过'),
    ('還', '还'),
    ('鄉', '乡'),
    ('醫', '医'),
    ('銀', '银'),
    ('錄', '录'),
    ('錢', '钱'),
    ('鐘', '钟'),
    ('長', '长'),
    ('門', '门'),
    ('開', '开'),
    ('間', '间'),
    ('關', '关'),
    ('隊', '队'),
    ('際', '际'),
    ('險', '险'),
    ('隻', '只'),
    ('電', '电'),
    ('預', '预'),
    ('頭', '头'),
    ('題', '题'),
    ('類', '类'),
    ('飯', '饭'),
    ('館', '馆'),
    ('體', '体'),
    ('麗', '丽'),
    ('麵', '面'),
    ('麼', '么'),
    ('點', '点'),
    ('齊', '齐'),
];

fn simplified(c: char) -> char {
    TRADITIONAL
        .binary_search_by(|(t, _)| t.cmp(&c))
        .map_or(c, |i| TRADITIONAL[i].1)
}

/// Sentence-final particles dropped at the end of a question.
const PARTICLES: &[char] = &['吗', '呢', '啊', '呀', '吧', '么', '嘛'];

/// The characters of `text` that take part in matching.
pub fn normalize(text: &str) -> Vec<char> {
    let mut s: String = text
        .nfkc()
        .flat_map(char::to_lowercase)
        .filter(|c| c.is_alphanumeric())
        .map(simplified)
        .collect();
    for (from, to) in QUESTION_WORDS {
        if s.contains(from) {
            s = s.replace(from, to);
        }
    }
    let mut chars: Vec<char> = s.chars().collect();
    while chars.len() > 1 && chars.last().is_some_and(|c| PARTICLES.contains(c)) {
        chars.pop();
    }
    chars
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> String {
        normalize(text).into_iter().collect()
    }

    #[test]
    fn width_case_and_punctuation() {
        assert_eq!(s("ＡＢＣ１２３？"), "abc123");
        assert_eq!(s("怎么 退款 ？！"), "怎么退款");
        assert_eq!(s("VIP会员，多少钱?"), "vip会员多少钱");
    }

    #[test]
    fn ways_of_asking_meet() {
        assert_eq!(s("如何退款？"), s("怎样退款呢"));
        assert_eq!(s("可以开发票吗"), s("能不能开发票"));
        assert_eq!(s("吗"), "吗");
        assert_eq!(s("請問會員價格是多少錢？"), s("请问会员价格是多少钱"));
        assert!(
            TRADITIONAL.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted for binary search"
        );
        assert_eq!(s("「直播」几点…"), "直播几点");
    }
}
