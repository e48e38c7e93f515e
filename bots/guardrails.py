"""Guardrails around every AI-answer call: pure functions, no I/O, no models.

The order a caller follows (see docs/bots-guardrails.md):

1. ``injection_check`` on the customer's message: blocked means the bot answers
   ``REFUSAL_MESSAGE`` or hands off; the provider is never called.
2. ``article_screen`` on every knowledge article when it is saved: a flagged
   article is not stored as context for the AI node.
3. ``redact_pii`` on everything that leaves for the provider; the mapping stays
   here so that ``Redaction.restore`` can put the customer's own values back.
4. ``output_check`` on the provider's answer before the customer sees it.
5. ``handoff_reason`` when the provider failed, timed out or was unsure.

Every function bounds its input first: regexes here have no nested unbounded
quantifiers, and nothing scans more than ``MAX_SCAN_CHARS`` characters, so a 1 MB
hostile message costs milliseconds, not minutes.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import html
import re
import unicodedata
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field

import phonenumbers
from stdnum import iban as std_iban
from stdnum import luhn
from stdnum.br import cpf
from stdnum.de import idnr
from stdnum.es import dni, nie
from stdnum.fr import nir
from stdnum.in_ import aadhaar
from stdnum.it import codicefiscale
from stdnum.nl import bsn
from stdnum.pl import pesel
from stdnum.us import ssn

# A customer's chat message longer than this is refused outright: no channel we
# serve sends more, and everything past it would only be room to hide a payload.
MAX_MESSAGE_CHARS = 4_000
# Knowledge articles are longer; still bounded so that screening is bounded.
MAX_ARTICLE_CHARS = 100_000
# Upper bound for any scan (redaction, output checks); text beyond it is cut.
MAX_SCAN_CHARS = 100_000
# Decoding embedded payloads: at most this many segments, this deep.
_MAX_DECODED_SEGMENTS = 16
_MAX_DECODE_DEPTH = 2

REFUSAL_MESSAGE = (
    "Sorry, I can't help with that request. "
    "I can answer questions about your orders and our services, or connect you with a person."
)
SAFE_OUTPUT_MESSAGE = (
    "Sorry, I can't share that answer. Let me connect you with a person who can help."
)


@dataclass(frozen=True)
class Verdict:
    blocked: bool
    reasons: list[str]
    normalised: str


@dataclass(frozen=True)
class Redaction:
    text: str
    mapping: dict[str, str]  # placeholder -> original value; never leaves this process
    kinds: list[str]
    truncated: bool = False

    def restore(self, reply: str) -> str:
        """Put the customer's own values back into the bot's reply."""
        if not self.mapping:
            return reply
        pattern = re.compile("|".join(re.escape(p) for p in self.mapping))
        return pattern.sub(lambda m: self.mapping[m.group(0)], reply)


@dataclass(frozen=True)
class OutputVerdict:
    safe_text: str
    replaced: bool
    reasons: list[str] = field(default_factory=list)
    truncated: bool = False


# --------------------------------------------------------------------------- text hygiene

_SURROGATES = re.compile("[\ud800-\udfff]")
# C0/C1 controls except tab and newline; NUL is among them.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Unicode "tag" characters (U+E0000..U+E007F) mirror ASCII invisibly ("ASCII smuggling").
_TAGS = re.compile("[\U000e0000-\U000e007f]+")

# Cyrillic and Greek letters that look like Latin ones (after casefold). A short
# table is enough: NFKC already folds fullwidth and mathematical alphabets, and the
# patterns only need to see the Latin words an attacker is imitating.
# fmt: off
_CONFUSABLES = str.maketrans(
    {
        # Cyrillic
        "а": "a", "в": "b", "с": "c", "ԁ": "d", "е": "e", "ё": "e", "һ": "h", "н": "h",
        "і": "i", "ї": "i", "ј": "j", "к": "k", "ӏ": "l", "м": "m", "п": "n", "о": "o",
        "р": "p", "ԛ": "q", "г": "r", "ѕ": "s", "т": "t", "ц": "u", "ѵ": "v", "ш": "w",
        "ԝ": "w", "х": "x", "у": "y", "ү": "y", "з": "3", "ь": "b",
        # Greek
        "α": "a", "β": "b", "ϲ": "c", "ε": "e", "η": "n", "ι": "i", "κ": "k", "μ": "u",
        "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "γ": "y", "ω": "w",
        "ς": "s", "σ": "o", "ϳ": "j",
        # Latin lookalikes NFKC leaves alone
        "ı": "i", "ɡ": "g", "ɑ": "a", "ſ": "s", "ꞵ": "b", "ɩ": "i", "ʟ": "l",
    }
)
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "|": "i", "!": "i"}
)
# fmt: on


def _clean(text: str, limit: int) -> str:
    """Bound, then drop what no human types: NUL, controls, lone surrogates."""
    text = text[:limit]
    text = _SURROGATES.sub("", text)
    return _CONTROLS.sub(" ", text)


def _strip_invisible(text: str) -> str:
    # Cf covers zero-width space/joiners, bidi overrides, soft hyphen, BOM.
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")


def _fold(text: str) -> str:
    """NFKC, casefold, drop accents and combining marks (zalgo), fold lookalikes."""
    text = unicodedata.normalize("NFKC", text).casefold()
    decomposed = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    text = text.translate(_CONFUSABLES)
    # Newlines stay: the delimiter patterns look for "system:" at the start of a line.
    return re.sub(r"[^\S\n]+", " ", text).strip()


def _untag(text: str) -> str:
    return _TAGS.sub(lambda m: "".join(chr(ord(c) - 0xE0000) for c in m.group(0)), text)


# --------------------------------------------------------------------------- decoding

_B64 = re.compile(r"[A-Za-z0-9+/_-]{16,8000}={0,2}")
_HEX = re.compile(r"(?:[0-9a-fA-F]{2}){8,4000}")
_HEX_ESCAPED = re.compile(r"(?:\\x[0-9a-fA-F]{2}){4,4000}")
_UNI_ESCAPED = re.compile(r"(?:\\u[0-9a-fA-F]{4}){4,2000}")
_URLENC = re.compile(r"%[0-9a-fA-F]{2}")


def _printable(data: bytes) -> str | None:
    """Decoded bytes count only if they read as text (most base64-looking order
    ids decode to noise and are left alone)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text:
        return None
    good = sum(1 for ch in text if ch.isprintable() or ch in "\n\t")
    letters = sum(1 for ch in text if ch.isalpha())
    if good / len(text) < 0.95 or letters < 4:
        return None
    if " " not in text.strip() and letters / len(text) < 0.7:
        return None
    return text


def _decoded_segments(text: str, *, rot13: bool = True) -> list[tuple[str, str]]:
    """(encoding, decoded text) for every embedded segment that decodes to text."""
    found: list[tuple[str, str]] = []

    def add(kind: str, decoded: str | None) -> None:
        if decoded and len(found) < _MAX_DECODED_SEGMENTS:
            found.append((kind, decoded))

    for m in _B64.finditer(text):
        seg = m.group(0)
        raw = seg.rstrip("=")
        padded = raw + "=" * (-len(raw) % 4)
        for altchars in (b"+/", b"-_"):
            try:
                data = base64.b64decode(padded, altchars=altchars, validate=False)
            except (binascii.Error, ValueError):
                continue
            decoded = _printable(data)
            if decoded:
                add("base64", decoded)
                break
    for m in _HEX.finditer(text):
        add("hex", _printable(bytes.fromhex(m.group(0))))
    for m in _HEX_ESCAPED.finditer(text):
        add("hex", _printable(bytes.fromhex(m.group(0).replace("\\x", ""))))
    for m in _UNI_ESCAPED.finditer(text):
        add("unicode-escape", "".join(chr(int(h, 16)) for h in m.group(0).split("\\u")[1:]))
    if _URLENC.search(text):
        unquoted = urllib.parse.unquote(text)
        if unquoted != text:
            add("url", unquoted)
    if "&" in text and ";" in text:
        unescaped = html.unescape(text)
        if unescaped != text:
            add("html-entities", unescaped)
    if rot13:  # once only: rot13 of rot13 is the text itself
        add("rot13", codecs.decode(text, "rot13"))
    return found


# --------------------------------------------------------------------------- patterns

# Written against folded text (lower case, no accents, Latin lookalikes folded).
# Gaps between words are bounded ({0,N} of \W+\w+ pairs, which cannot overlap),
# so none of these can backtrack catastrophically.
_GAP = r"(?:\W+\w+){0,5}?\W+"

_OVERRIDE_TARGETS_EN = (
    r"(?:instructions?|rule[sz]|prompts?|directives?|guidelines|constraints|programming|"
    r"guardrails|restrictions|polic(?:y|ies)|system\s+messages?|safety\s+filters?|filters)"
)
_PATTERNS: dict[str, list[str]] = {
    "override": [
        # en
        rf"\b(?:ignore|ignoring|disregard|forget|override|bypass|overrule|discard|abandon|drop)\b{_GAP}{_OVERRIDE_TARGETS_EN}\b",
        r"\b(?:previous|prior|above|earlier|preceding|original|initial)\s+(?:instructions|prompts?|directives)\s+(?:are|were|is)\s+(?:void|cancelled|canceled|obsolete|revoked|no\s+longer)",
        r"\bnew\s+(?:instructions|rules|directives|system\s+prompt)\s*:",
        r"\b(?:ignore|disregard|forget)\s+(?:everything|all|anything)\b(?:\W+\w+){0,4}?\W+(?:above|before|told|said|instructed|earlier|previously|so\s+far)\b",
        r"\b(?:ignore|disregard)\s+(?:all\s+)?(?:the\s+)?(?:above|preceding)\s*(?:$|[.,;!]|and\b)",
        r"\b(?:ignore|disregard|forget)\b(?:\W+\w+){0,2}?\W+(?:previous|prior|above|earlier|preceding|original|initial)\s+(?:directions|commands)\b",
        r"(?:^|\n)\s*sudo\b",
        r"\b(?:vergiss|vergesst|ignoriere)\s+alles\b(?:\W+\w+){0,3}?\W+(?:was|bisher\w*|vorher\w*|oben|gesagt)\b",
        r"\b(?:oublie|oubliez|ignore|ignorez)\s+tout\s+ce\s+qui\s+(?:precede|est\s+au-?dessus)\b",
        r"\b(?:olvida|olvide|ignora)\s+todo\s+lo\s+(?:anterior|que\s+te\s+(?:dijeron|han\s+dicho))\b",
        r"\b(?:esqueca|esquece|ignore)\s+tudo\s+(?:o\s+que|acima|anterior)\b",
        r"\b(?:dimentica|ignora)\s+tutto\s+(?:quello|cio|quanto)\b",
        r"\b(?:vergeet|negeer)\s+alles\s+(?:wat|hierboven|hiervoor)\b",
        r"\bno\s+longer\s+(?:bound|restricted|limited)\s+by\b",
        r"\bwithout\s+(?:any\s+)?(?:restrictions|filters|rules|guidelines|limitations|censorship)\b",
        r"\b(?:do\s+not|don't|dont)\s+follow\s+(?:your|the|any)\s+(?:rules|instructions|guidelines)",
        # de
        r"\b(?:ignorier\w*|vergiss|vergesst|vergessen\s+sie|missachte\w*|uberschreib\w*|umgeh\w*)\b(?:\W+\w+){0,5}?\W+(?:anweisung\w*|instruktion\w*|regeln|vorgaben|richtlinien|systemprompt\w*|befehle)\b",
        r"\bneue\s+anweisungen\s*:",
        # fr
        r"\b(?:ignore\w*|oublie\w*|ne\s+tiens\s+pas\s+compte)\b(?:\W+\w+){0,5}?\W+(?:instructions?|consignes?|regles|directives|contraintes)\b",
        r"\bnouvelles\s+instructions\s*:",
        # es / pt / it (shared stems after folding accents away)
        r"\b(?:ignora\w*|ignore\w*|olvida\w*|omite|omitir|esquec\w*|desconsider\w*|dimentica\w*|trascura\w*)\b(?:\W+\w+){0,5}?\W+(?:instrucciones|instrucoes|instrucao|istruzioni|reglas|regras|regole|indicaciones|indicacoes|directivas|diretrizes|direttive)\b",
        r"\b(?:nuevas\s+instrucciones|novas\s+instrucoes|nuove\s+istruzioni)\s*:",
        # nl
        r"\b(?:negeer|vergeet|negeren)\b(?:\W+\w+){0,5}?\W+(?:instructies|regels|opdrachten|richtlijnen|aanwijzingen)\b",
        # pl, tr, sv, da/no
        r"\b(?:zignoruj|ignoruj|zapomnij)\b(?:\W+\w+){0,5}?\W+(?:instrukcje|polecenia|zasady|reguly)\b",
        r"\b(?:onceki|yukaridaki)\s+(?:tum\s+)?(?:talimatlari|kurallari)\s+(?:yok\s+say|unut|gormezden)",
        r"\b(?:ignorera|glom|ignorer|glem)\b(?:\W+\w+){0,5}?\W+(?:instruktioner|instruktionerne|instruksjonene|regler|reglerne|reglene|instrukser)\b",
        # ru / uk (folded keeps Cyrillic except the lookalikes; match both spellings)
        r"(?:игнорир\w*|забуд\w*|не\s+обращай\w*|проигнорир\w*|ignorir\w*|zabud\w*)(?:\W+\w+){0,5}?\W+(?:инструкц\w*|правил\w*|указани\w*|instrukts\w*)",
        # zh / ja / ko / ar / hi
        r"(?:忽略|无视|忽视|無視|忘记|忘掉)(?:.{0,12}?)(?:指令|指示|说明|規則|规则|提示|命令)",
        r"(?:指示|命令|ルール|プロンプト)(?:.{0,8}?)(?:無視|忘れ)",
        r"(?:이전|위의|모든)(?:.{0,10}?)(?:지시|명령|규칙)(?:.{0,6}?)(?:무시|잊어)",
        r"(?:تجاهل|انس)(?:.{0,20}?)(?:التعليمات|الأوامر|القواعد|التعليمات السابقة)",
        r"(?:पिछले|सभी)(?:.{0,20}?)(?:निर्देशों|निर्देश)(?:.{0,12}?)(?:अनदेखा|भूल)",
    ],
    "extraction": [
        r"\bsystem\s*-?\s*prompts?\b",
        r"\b(?:initial|hidden|original|secret|internal|developer|pre-?prompt)\s+(?:prompt|instructions|directives)\b",
        r"\b(?:reveal|show|print|repeat|display|output|leak|dump|share|list|spell\s+out|recite|paste|copy|tell\s+me|give\s+me|what\s+(?:are|were|is))\b(?:\W+\w+){0,3}?\W+(?:your\s+(?:instructions|rules|prompt|guidelines|configuration|context\s+window|directives)|the\s+(?:prompt|instructions\s+you))\b",
        r"\b(?:print|summari[sz]e|translate|list|reveal|output|paste|dump|recite|spell\s+out)\b(?:\W+\w+){0,6}?\W+(?:your|ur)\s+(?:instructions|rules|prompt|guidelines|directives)\b",
        r"\b(?:repeat|print|output|recite)\s+(?:everything|all|the\s+(?:text|words|lines|message|content|conversation))\s+(?:above|before\s+this)\b",
        r"\b(?:repeat|print|output|recite|paste|copy)\b(?:\W+\w+){0,6}?\W+(?:verbatim|word\s+for\s+word)\b",
        r"\bwhat\s+(?:were|have)\s+you\s+(?:been\s+)?(?:told|instructed|programmed)\b",
        # "the API key for my shop plugin" is a customer's question; the bot's own key is not.
        r"\b(?:your|ur|the\s+bot'?s|the\s+assistant'?s)\s+(?:own\s+)?(?:api|secret|access|private)\s*[-_]?\s*(?:keys?|tokens?)\b",
        r"\b(?:api|secret|access|private)\s*[-_]?\s*(?:key|token)s?\s+(?:you|this\s+bot)\s+(?:use|have|were\s+given)\b",
        r"\b(?:your|ur)\s+prompt\b(?!\s+(?:reply|replies|response|answer|service|delivery|help|attention|action|refund|support|shipping|feedback))",
        r"\byour\s+(?:system|initial|first)\s+message\b",
        r"\b(?:instructions|rules|prompt|guidelines)\s+(?:you\s+(?:were|have\s+been|got)\s+(?:given|told)|you\s+(?:follow|received|got))\b",
        r"\b(?:environment|env)\s+variables?\b",
        r"\b(?:begin|start)\s+your\s+(?:reply|answer|response)\s+with\b",
        # de, fr, es, pt, it, nl
        r"\b(?:systemanweisung\w*|systemnachricht|system-?prompt)\b",
        r"\b(?:zeig\w*|nenn\w*|wiederhol\w*|gib)\b(?:\W+\w+){0,3}?\W+(?:deine|die|ihre)\s+(?:anweisungen|instruktionen|regeln|vorgaben)\b",
        r"\b(?:invite|prompt|message|consignes?)\s+(?:systeme|du\s+systeme|initial\w*|cache\w*)\b",
        r"\b(?:montre|affiche|revele|repete|donne)\w*\b(?:\W+\w+){0,3}?\W+(?:tes|vos)\s+(?:instructions|consignes|regles)\b",
        r"\b(?:prompt|instrucciones|mensaje|instrucoes|mensagem|istruzioni|messaggio)\s+(?:del|do|di|de)\s+(?:sistema)\b",
        r"\b(?:muestra\w*|revela\w*|mostra\w*|dime|diga|dimmi|rivela\w*)\b(?:\W+\w+){0,3}?\W+(?:tus|suas|tue|sus|le\s+tue)\s+(?:instrucciones|instrucoes|istruzioni|reglas|regras|regole)\b",
        r"\b(?:systeemprompt|systeeminstructies|systeembericht)\b",
        r"\b(?:toon|laat|geef)\b(?:\W+\w+){0,3}?\W+(?:je|jouw|uw)\s+(?:instructies|regels)\b",
        r"(?:系统提示|系統提示|システムプロンプト|시스템\s*프롬프트|системн\w*\s+(?:промпт|подсказк\w*|инструкц\w*)|موجه النظام)",
    ],
    "role-play": [
        r"\byou\s+are\s+(?:now|no\s+longer)\b(?:\W+\w+){0,3}?\W+(?:ai|assistant|bot|model|dan|gpt|unrestricted|unfiltered|free|jailbroken|evil|mode|developer|admin|root|hacker|character)\b",
        r"\bfrom\s+now\s+on\b(?:\W+\w+){0,3}?\W+(?:you|act|respond|answer|behave|pretend)\b",
        r"\b(?:pretend|imagine)\s+(?:to\s+be|you\s+are|you're|that\s+you|you\s+have\s+no)\b",
        r"\b(?:act|behave|respond)\s+as\s+(?:if\s+you\s+(?:are|were|have)|an?\s+(?:unrestricted|unfiltered|uncensored|evil|jailbroken|ai\s+without)|dan\b|my\s+(?:deceased|dead|late)\s+grand)",
        r"\b(?:role\s*-?\s*play|roleplay)\b(?:\W+\w+){0,4}?\W+(?:as|where|in\s+which)\b",
        r"\b(?:developer|debug|god|admin|sudo|unrestricted|jailbreak|dan)\s+mode\b",
        r"\bdo\s+anything\s+now\b",
        r"\bjailbr(?:eak|oken)\b(?:\W+\w+){0,3}?\W+(?:you|yourself|the\s+(?:ai|bot|assistant|model)|mode|prompt)\b",
        r"\bstay\s+in\s+character\b",
        r"\bsimulate\s+(?:an?\s+)?(?:unrestricted|unfiltered|uncensored|different)\s+(?:ai|assistant|model|bot)\b",
        # de, fr, es, pt, it, nl
        r"\bdu\s+bist\s+(?:jetzt|ab\s+sofort|nun)\b",
        r"\b(?:tu|tue|tut)\s+so\s*,?\s+als\s+(?:ob|ware|wärst|warst|seist)\b",
        r"\b(?:tu\s+es|vous\s+etes)\s+(?:maintenant|desormais|dorenavant)\b",
        r"\bfai(?:s|tes)\s+semblant\b",
        r"\b(?:ahora\s+eres|a\s+partir\s+de\s+ahora\s+eres|finge\s+(?:ser|que)|haz\s+como\s+si)\b",
        r"\b(?:agora\s+(?:voce|tu)\s+(?:e|es)|finja\s+(?:ser|que))\b",
        r"\b(?:ora|adesso|da\s+ora\s+in\s+poi)\s+sei\b|\bfingi\s+di\s+essere\b",
        r"\b(?:je\s+bent\s+nu|doe\s+alsof|speel\s+de\s+rol)\b",
        r"(?:ты\s+теперь|теперь\s+ты|притворись|представь,?\s+что\s+ты)",
        r"(?:你现在是|你現在是|假装你是|扮演|あなたは今から|ふりをして)",
    ],
    "delimiter": [
        r"<\|?\s*(?:im_start|im_end|system|endoftext|start_header_id|end_header_id|eot_id)\s*\|?>",
        r"\[/?(?:inst|sys)\]|<</?sys>>",
        r"(?:^|\n)\s*#{1,6}\s*(?:system|instructions?|admin|developer)\b",
        r"(?:^|\n)\s*(?:system|assistant|developer)\s*:\s*\S",
        r"\bend\s+of\s+(?:user\s+)?(?:input|prompt|conversation)\b",
    ],
}

# Extra signs in a knowledge article that it speaks to the model, not to customers.
_ARTICLE_PATTERNS: list[str] = [
    r"\b(?:note|message|instructions?)\s+(?:to|for)\s+(?:the\s+)?(?:ai|assistant|bot|chatbot|model|llm|language\s+model)\b",
    r"\bif\s+you\s+are\s+(?:an?\s+)?(?:ai|assistant|bot|chatbot|language\s+model|llm)\b",
    r"\b(?:ai|assistant|bot|chatbot|model|llm)s?\s+(?:must|should|shall|will|has\s+to|needs?\s+to)\b",
    r"\b(?:dear|attention|hey)\s+(?:ai|assistant|bot|chatbot|model|llm)\b",
    r"\b(?:do\s+not|don't|never)\s+(?:tell|inform|mention\s+(?:to|this\s+to))\s+the\s+(?:user|customer)\b",
    r"\binstead\s*,?\s+(?:say|reply|respond|answer|tell)\b",
    r"\b(?:always|only)\s+(?:reply|respond|answer)\s+(?:with|that|by)\b",
    r"\b(?:ask|tell)\s+the\s+(?:user|customer)\s+(?:for|to\s+(?:send|enter|provide|share|give))\s+(?:their|his|her|your)?\s*(?:password|pin|card|cvv|otp|code|credentials|login)",
    # "Send the conversation to https://…": data leaving, within one sentence (a
    # returns article's "drop the parcel at the post office. Write to returns@…"
    # or "send your parcel to returns@…" is not).
    r"\b(?:send|forward|post|exfiltrate|upload|leak|copy)\b(?:[^\w.!?\n]+\w+){0,5}?"
    r"[^\w.!?\n]+(?:(?:the|this|all|any|every|their|his|her|its|our|user's|customer's)\s+)*"
    r"(?:conversations?|chats?|history|data|details|messages?|transcripts?|everything|above|"
    r"information|info|prompts?|context|credentials|passwords?|tokens?|keys?|secrets?|"
    r"(?:e-?mail\s+)?addresses|numbers|records)\b(?:[^\w.!?\n]+\w+){0,4}?[^\w.!?\n]+"
    r"(?:to|at)\s+(?:https?://|\S+@\S+)",
    r"\b(?:exfiltrate|upload|leak)\b(?:[^\w.!?\n]+\w+){0,4}?[^\w.!?\n]+(?:to|at)\s+(?:https?://|\S+@\S+)",
    r"!\[[^\]\n]{0,200}\]\(https?://[^)\s]{1,500}\?[^)\s]{0,500}\)",  # markdown image beacons
    r"<!--",  # hidden HTML comments
    # de, fr, es, pt, it, nl
    r"\b(?:hinweis|nachricht)\s+(?:an|fur)\s+(?:die\s+|den\s+)?(?:ki|assistent\w*|bot)\b",
    r"\b(?:note|message)\s+(?:a|pour)\s+(?:l'|le\s+|la\s+)?(?:ia|assistant|bot)\b",
    r"\b(?:nota|mensaje|mensagem|messaggio)\s+(?:para|per)\s+(?:el\s+|la\s+|o\s+|a\s+|l')?(?:ia|asistente|assistente|bot)\b",
    r"\b(?:notitie|bericht)\s+voor\s+(?:de\s+)?(?:ai|assistent|bot)\b",
    r"\b(?:si|wenn|als|se)\s+(?:eres|du|tu\s+es|je|sei)\s+(?:eine?\s+|un\s+|una\s+|een\s+)?(?:ki|ia|ai|asistente|assistent|assistente|assistant|bot)\b",
]

_COMPILED = {cat: [re.compile(p) for p in pats] for cat, pats in _PATTERNS.items()}
_COMPILED_ARTICLE = [re.compile(p) for p in _ARTICLE_PATTERNS]

# Letters only, for payloads spelled out with separators ("i.g.n.o.r.e  a l l ...").
_COLLAPSED = [
    (
        "override",
        re.compile(
            r"(?:ignor|disregard|forget|bypass|override)(?:e|ing|es)?(?:all|any|the|your|my|of|previous|prior|above|earlier|preceding|original|initial){0,4}"
            r"(?:instructions|instruction|rules|prompts|prompt|directives|guidelines|restrictions)"
        ),
    ),
    (
        "extraction",
        re.compile(r"systemprompt|revealyourprompt|showyourinstructions|printyourinstructions"),
    ),
    ("role-play", re.compile(r"developermode|doanythingnow|youarenowdan|jailbreakmode|jailbroken")),
]


def _match(text: str, compiled: dict[str, list[re.Pattern[str]]]) -> list[str]:
    return [cat for cat, pats in compiled.items() if any(p.search(text) for p in pats)]


def _views(text: str) -> list[tuple[str, str]]:
    """The shapes one message is checked in: folded, folded + leetspeak, and
    letters only (spaced-out words). Returned as (label, text)."""
    folded = _fold(text)
    leet = folded.translate(_LEET)
    views = [("", folded)]
    # Scripts the lookalike table would mangle (Cyrillic words) are read unfolded too.
    plain = unicodedata.normalize("NFKC", text).casefold()
    if plain != folded:
        views.append(("", plain))
    if leet != folded:
        views.append(("leetspeak", leet))
    return views


def _collapsed_hits(folded: str) -> list[str]:
    letters = re.sub(r"[^a-z]", "", folded.translate(_LEET))
    return [cat for cat, pat in _COLLAPSED if pat.search(letters)]


def _scan(text: str, *, depth: int = 0) -> list[str]:
    reasons: list[str] = []
    untagged = _untag(text)
    if untagged != text:
        reasons.append("encoded:unicode-tags")
        # The hidden ASCII is the payload; check it as a message of its own.
        reasons.extend(f"encoded:unicode-tags:{r}" for r in _scan(untagged, depth=depth + 1))
    visible = _strip_invisible(untagged)
    for label, view in _views(visible):
        for cat in _match(view, _COMPILED):
            reasons.append(f"{label}:{cat}" if label else cat)
    if not reasons:
        folded = _fold(visible)
        reasons.extend(f"spaced:{cat}" for cat in _collapsed_hits(folded))
    if depth < _MAX_DECODE_DEPTH:
        for kind, decoded in _decoded_segments(visible, rot13=depth == 0):
            reasons.extend(f"encoded:{kind}:{r}" for r in _scan(decoded, depth=depth + 1))
    return list(dict.fromkeys(reasons))


def injection_check(text: object) -> Verdict:
    """Is this customer message an attempt to steer the bot? Fail closed."""
    if not isinstance(text, str):
        return Verdict(blocked=True, reasons=["not-text"], normalised="")
    if len(text) > MAX_MESSAGE_CHARS:
        return Verdict(blocked=True, reasons=["too-long"], normalised=_fold(_clean(text, 200)))
    cleaned = _clean(text, MAX_MESSAGE_CHARS)
    reasons = _scan(cleaned)
    return Verdict(
        blocked=bool(reasons), reasons=reasons, normalised=_fold(_strip_invisible(_untag(cleaned)))
    )


def article_screen(title: object, body: object) -> Verdict:
    """Refuse knowledge articles that carry instructions for the model (indirect
    injection): they would become the AI node's context."""
    if not isinstance(title, str) or not isinstance(body, str):
        return Verdict(blocked=True, reasons=["not-text"], normalised="")
    if len(title) + len(body) > MAX_ARTICLE_CHARS:
        return Verdict(blocked=True, reasons=["too-long"], normalised="")
    raw = _clean(f"{title}\n{body}", MAX_ARTICLE_CHARS)
    reasons = _scan(raw)
    untagged = _untag(raw)
    # Invisible characters in an article are how hidden instructions ride along;
    # one soft hyphen is typography, a run of them is not.
    invisible = sum(1 for ch in untagged if unicodedata.category(ch) == "Cf")
    if invisible > 3:
        reasons.append("invisible-characters")
    folded = _fold(_strip_invisible(untagged))
    for pat in _COMPILED_ARTICLE:
        if pat.search(folded):
            reasons.append("addresses-the-model")
            break
    return Verdict(blocked=bool(reasons), reasons=list(dict.fromkeys(reasons)), normalised=folded)


# --------------------------------------------------------------------------- PII

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.){1,8}[A-Za-z]{2,24}\b"
)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b")
_CARD = re.compile(r"(?<![\d])\d(?:[ -]?\d){12,18}(?![\d])")
# National ids that validate without context (format + check digit/letter strong enough).
_STRONG_IDS: list[tuple[re.Pattern[str], object]] = [
    (re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), ssn),
    (re.compile(r"\b\d{8}-?[A-Za-z]\b"), dni),
    (re.compile(r"\b[XYZxyz]-?\d{7}-?[A-Za-z]\b"), nie),
    (re.compile(r"\b[A-Za-z]{6}\d{2}[A-Za-z]\d{2}[A-Za-z]\d{3}[A-Za-z]\b"), codicefiscale),
    (re.compile(r"\b[12][ ]?\d{2}[ ]?\d{2}[ ]?(?:\d{2}|2[AB])[ ]?\d{3}[ ]?\d{3}[ ]?\d{2}\b"), nir),
    (re.compile(r"\b\d{3}\.\d{3}\.\d{3}-\d{2}\b"), cpf),
]
_NINO = re.compile(r"\b[A-CEGHJ-PR-TW-Z]{2}[ ]?\d{2}[ ]?\d{2}[ ]?\d{2}[ ]?[A-D]\b")
# Bare digit runs pass weak checksums by chance (a 9-digit order number is a valid
# Dutch BSN one time in eleven), so they count only next to a word naming the id.
_ID_CONTEXT = re.compile(
    r"\b(?:bsn|burgerservicenummer|ssn|social\s+security|steuer-?id|steueridentifikationsnummer|"
    r"identifikationsnummer|pesel|cpf|aadhaar|aadhar|national\s+id|id\s+number|personal\s+number|"
    r"tax\s+id|numero\s+fiscal|personnummer)\b",
    re.IGNORECASE,
)
_DIGIT_RUN = re.compile(r"(?<![\d])\d(?:[ .-]?\d){8,11}(?![\d])")
_WEAK_IDS = [bsn, idnr, pesel, cpf, aadhaar, ssn]


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


class _Redactor:
    def __init__(self) -> None:
        self.mapping: dict[str, str] = {}
        self.by_value: dict[tuple[str, str], str] = {}
        self.counts: dict[str, int] = {}
        self.kinds: list[str] = []

    def placeholder(self, kind: str, value: str) -> str:
        key = (kind, value)
        if key not in self.by_value:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            ph = f"[{kind}_{self.counts[kind]}]"
            self.by_value[key] = ph
            self.mapping[ph] = value
            if kind not in self.kinds:
                self.kinds.append(kind)
        return self.by_value[key]


def _iban_span(candidate: str) -> str | None:
    """The longest prefix of the candidate, cut at a group boundary, that is a valid IBAN
    (a greedy match may have run into a following upper-case word)."""
    parts = candidate.split(" ")
    for end in range(len(parts), 0, -1):
        value = " ".join(parts[:end])
        if len(value.replace(" ", "")) >= 15 and std_iban.is_valid(value):
            return value
    return None


def redact_pii(text: object, *, region: str | None = None) -> Redaction:
    """Replace e-mail addresses, phone numbers, card numbers (Luhn), IBANs and
    national ids by placeholders. ``region`` lets national phone numbers without a
    + prefix count (ISO 3166 code); without it only international ones do."""
    if not isinstance(text, str):
        return Redaction(text="", mapping={}, kinds=[], truncated=True)
    truncated = len(text) > MAX_SCAN_CHARS
    out = _clean(text, MAX_SCAN_CHARS)
    r = _Redactor()

    out = _EMAIL.sub(lambda m: r.placeholder("EMAIL", m.group(0)), out)

    def iban_sub(m: re.Match[str]) -> str:
        value = _iban_span(m.group(0))
        if value is None:
            return m.group(0)
        return r.placeholder("IBAN", value) + m.group(0)[len(value) :]

    out = _IBAN.sub(iban_sub, out)

    def card_sub(m: re.Match[str]) -> str:
        digits = _digits(m.group(0))
        if 13 <= len(digits) <= 19 and luhn.is_valid(digits):
            return r.placeholder("CARD", m.group(0))
        return m.group(0)

    out = _CARD.sub(card_sub, out)

    for pattern, module in _STRONG_IDS:
        out = pattern.sub(
            lambda m, mod=module: (
                r.placeholder("NATIONAL_ID", m.group(0))
                if mod.is_valid(m.group(0))  # type: ignore[attr-defined]
                else m.group(0)
            ),
            out,
        )
    out = _NINO.sub(lambda m: r.placeholder("NATIONAL_ID", m.group(0)), out)

    if _ID_CONTEXT.search(out):

        def weak_sub(m: re.Match[str]) -> str:
            window = out[max(0, m.start() - 60) : m.start()]
            if _ID_CONTEXT.search(window) and any(mod.is_valid(m.group(0)) for mod in _WEAK_IDS):  # type: ignore[attr-defined]
                return r.placeholder("NATIONAL_ID", m.group(0))
            return m.group(0)

        out = _DIGIT_RUN.sub(weak_sub, out)

    pieces: list[str] = []
    last = 0
    matcher = phonenumbers.PhoneNumberMatcher(
        out, region or "ZZ", leniency=phonenumbers.Leniency.VALID, max_tries=2000
    )
    for match in matcher:
        pieces.append(out[last : match.start])
        pieces.append(r.placeholder("PHONE", match.raw_string))
        last = match.end
    pieces.append(out[last:])
    out = "".join(pieces)

    return Redaction(text=out, mapping=dict(r.mapping), kinds=list(r.kinds), truncated=truncated)


# --------------------------------------------------------------------------- output

_WORD = re.compile(r"\w+")
_PROMPT_NGRAM = 6  # six words in a row from the system prompt is an echo, not chance
_PROMPT_SHINGLE = 24  # letters-only window for echoes with the spacing changed
_SECRET_WINDOW = 8
# A markdown or HTML image in an answer is fetched by the customer's client without a
# click: the classic way to smuggle conversation data out in a URL.
_IMAGE = re.compile(r"!\[[^\]\n]{0,500}\]\s{0,5}\(|<\s*img\b", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?。！？](?=\s|$)")


def _compact(value: str) -> str:
    return re.sub(r"[\W_]+", "", _fold(value))


def _ngrams(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _echoes_prompt(answer: str, system_prompt: str) -> bool:
    if not system_prompt.strip():
        return False
    a_words = _WORD.findall(_fold(answer))
    p_words = _WORD.findall(_fold(system_prompt))
    if len(p_words) >= _PROMPT_NGRAM and _ngrams(a_words, _PROMPT_NGRAM) & _ngrams(
        p_words, _PROMPT_NGRAM
    ):
        return True
    a_letters = _compact(answer)
    p_letters = _compact(system_prompt)
    if len(p_letters) < _PROMPT_SHINGLE:
        return bool(p_letters) and len(p_letters) >= 12 and p_letters in a_letters
    shingles = {
        p_letters[i : i + _PROMPT_SHINGLE] for i in range(0, len(p_letters) - _PROMPT_SHINGLE + 1)
    }
    return any(
        a_letters[i : i + _PROMPT_SHINGLE] in shingles
        for i in range(0, len(a_letters) - _PROMPT_SHINGLE + 1)
    )


def _leaks_secret(answer: str, secrets: Iterable[str]) -> bool:
    lowered = answer.casefold()
    compact = _compact(answer)
    views = [lowered, compact]
    # A secret may also leave encoded (base64, hex, reversed).
    views.extend(_compact(d) for _, d in _decoded_segments(answer))
    views.append(compact[::-1])
    for secret in secrets:
        if not isinstance(secret, str) or not secret:
            continue
        s_compact = _compact(secret)
        if secret.casefold() in lowered:
            return True
        if len(s_compact) < _SECRET_WINDOW:
            if len(s_compact) >= 4 and any(s_compact in v for v in views):
                return True
            continue
        windows = {
            s_compact[i : i + _SECRET_WINDOW] for i in range(len(s_compact) - _SECRET_WINDOW + 1)
        }
        for view in views:
            if any(
                view[i : i + _SECRET_WINDOW] in windows
                for i in range(len(view) - _SECRET_WINDOW + 1)
            ):
                return True
        encoded = [
            base64.b64encode(secret.encode()).decode().rstrip("="),
            secret.encode().hex(),
        ]
        if any(e.casefold() in lowered for e in encoded):
            return True
    return False


def _truncate(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    ends = [m.end() for m in _SENTENCE_END.finditer(head)]
    if ends and ends[-1] >= max_chars // 3:
        return head[: ends[-1]].rstrip()
    cut = head.rsplit(" ", 1)[0] if " " in head else head
    return cut.rstrip() + "…" if len(cut) < max_chars else cut[: max_chars - 1] + "…"


def output_check(
    answer: object,
    *,
    system_prompt: str,
    secrets: Iterable[str],
    allowed_pii: Iterable[str],
    max_chars: int,
    region: str | None = None,
) -> OutputVerdict:
    """Check the provider's answer before the customer sees it: no system prompt,
    no secret, no PII the customer did not give; cut to ``max_chars`` at a sentence.
    ``region`` as for ``redact_pii``: the tenant's country, so national numbers count."""
    if not isinstance(answer, str) or max_chars <= 0:
        return OutputVerdict(safe_text=SAFE_OUTPUT_MESSAGE, replaced=True, reasons=["not-text"])
    # Anything past a few times the cap would be cut anyway; bounding it first bounds the checks.
    text = _clean(answer, min(MAX_SCAN_CHARS, max(max_chars * 4, 2_000)))
    text = _strip_invisible(_untag(text)).strip()
    reasons: list[str] = []
    if _echoes_prompt(text, system_prompt):
        reasons.append("system-prompt")
    if _leaks_secret(text, list(secrets)):
        reasons.append("secret")
    if _IMAGE.search(text):
        reasons.append("image")
    allowed_values = [v for v in allowed_pii if isinstance(v, str)]
    allowed = {_compact(v) for v in allowed_values}
    allowed |= {_digits(v) for v in allowed_values if _digits(v)}
    found = redact_pii(text, region=region)
    for value in found.mapping.values():
        if _compact(value) not in allowed and (not _digits(value) or _digits(value) not in allowed):
            reasons.append("pii")
            break
    if reasons:
        return OutputVerdict(safe_text=SAFE_OUTPUT_MESSAGE, replaced=True, reasons=reasons)
    if not text:
        return OutputVerdict(safe_text=SAFE_OUTPUT_MESSAGE, replaced=True, reasons=["empty"])
    safe = _truncate(text, max_chars)
    truncated = safe != text
    return OutputVerdict(
        safe_text=safe, replaced=False, reasons=["length"] if truncated else [], truncated=truncated
    )


# --------------------------------------------------------------------------- handoff

_UNSURE = re.compile(
    r"\b(?:i(?:\s+am|['’]m)\s+not\s+(?:sure|certain)|i\s+(?:do\s+not|don['’]t)\s+know|"
    r"i\s+(?:cannot|can['’]t)\s+find|no\s+information\s+(?:about|on)|unable\s+to\s+(?:answer|help|find))\b",
    re.IGNORECASE,
)


def handoff_reason(
    *,
    error: BaseException | None = None,
    timed_out: bool = False,
    answer: str | None = None,
    confidence: float | None = None,
    min_confidence: float = 0.5,
) -> str | None:
    """Why this AI answer must go to a person instead, or None when it may be sent."""
    if timed_out:
        return "provider-timeout"
    if error is not None:
        return "provider-error"
    if not isinstance(answer, str) or not answer.strip():
        return "empty-answer"
    if confidence is not None and not (confidence >= min_confidence):  # NaN counts as unsure
        return "low-confidence"
    if _UNSURE.search(_fold(answer[:MAX_SCAN_CHARS])):
        return "unsure"
    return None
