"""Tiny random-weight models for offline tests, the demo and the benchmark (no hub downloads).

A byte-level BPE tokenizer is trained with `tokenizers` on real sentences and wrapped in
PreTrainedTokenizerFast; T5, Marian, M2M100 and Llama models get random weights and are saved with
`save_pretrained` (safetensors), so the engine loads them exactly as it loads a real model from disk.
Their text is noise: they exercise loading, batching and bookkeeping, not quality.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PAD, EOS, BOS, UNK, MASK = "<pad>", "</s>", "<s>", "<unk>", "<mask>"
SPECIAL = [PAD, EOS, BOS, UNK]  # ids 0..3, the same in every tiny model
LANG_TOKENS = ["__en__", "__de__", "__fr__"]  # M2M100-style language codes (forced BOS tests)
# A minimal chat template, so the engine's chat path runs on a tiny causal model.
CHAT_TEMPLATE = ("{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|> {% endif %}")


def train_bpe(texts: list[str], vocab_size: int = 1000):
    """A byte-level BPE `tokenizers.Tokenizer` trained on `texts` (byte-level: no unknown characters)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    return tokenizer


def wrap_tokenizer(backend, kind: str, chat_template: str | None = None):
    """Wrap a trained tokenizer for a model kind: seq2seq inputs end with </s>; causal ones start with <s>."""
    import copy

    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    backend = copy.deepcopy(backend)
    if kind == "seq2seq":
        backend.post_processor = processors.TemplateProcessing(single=f"$A {EOS}", special_tokens=[(EOS, 1)])
    else:
        backend.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, 2)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token=PAD, eos_token=EOS, bos_token=BOS,
                                        unk_token=UNK)
    if chat_template:
        tokenizer.chat_template = chat_template
    return tokenizer


def _save(model, tokenizer, path: Path) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if getattr(model, "generation_config", None) is not None:  # generative models only
        model.generation_config.pad_token_id = 0
        model.generation_config.eos_token_id = 1
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _seeded(build, seed: int):
    """Build a model under a fixed seed without disturbing the caller's global RNG."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build().eval()


def build_t5(path: Path, backend, *, d_model: int = 32, layers: int = 2, heads: int = 4, d_ff: int = 64,
             d_kv: int | None = None, seed: int = 0, task_prefixes: bool = True, max_input_tokens: int | None = None,
             init_factor: float = 1.0) -> Path:
    """A random T5; `task_prefixes` declares T5's task prefixes in `task_specific_params` as t5-small does."""
    from transformers import T5Config, T5ForConditionalGeneration

    tokenizer = wrap_tokenizer(backend, "seq2seq")
    if max_input_tokens:
        tokenizer.model_max_length = max_input_tokens
    config = T5Config(vocab_size=len(tokenizer), d_model=d_model, d_kv=d_kv or d_model // heads, d_ff=d_ff,
                      num_layers=layers, num_decoder_layers=layers, num_heads=heads, pad_token_id=0, eos_token_id=1,
                      decoder_start_token_id=0, initializer_factor=init_factor,
                      task_specific_params={
                          "summarization": {"prefix": "summarize: "},
                          "translation_en_to_de": {"prefix": "translate English to German: "},
                      } if task_prefixes else None)
    return _save(_seeded(lambda: T5ForConditionalGeneration(config), seed), tokenizer, path)


def build_marian(path: Path, backend, *, d_model: int = 32, layers: int = 2, max_positions: int = 64,
                 seed: int = 0) -> Path:
    """A random Marian model whose positions stop at `max_positions` (long inputs must be cut)."""
    from transformers import MarianConfig, MarianMTModel

    tokenizer = wrap_tokenizer(backend, "seq2seq")
    tokenizer.model_max_length = max_positions
    config = MarianConfig(vocab_size=len(tokenizer), d_model=d_model, encoder_layers=layers, decoder_layers=layers,
                          encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=2 * d_model,
                          decoder_ffn_dim=2 * d_model, max_position_embeddings=max_positions, pad_token_id=0,
                          eos_token_id=1, decoder_start_token_id=0, forced_eos_token_id=None, init_std=0.3)
    return _save(_seeded(lambda: MarianMTModel(config), seed), tokenizer, path)


def build_m2m(path: Path, backend, *, d_model: int = 32, seed: int = 0) -> Path:
    """A random M2M100 whose vocabulary holds `__xx__` language tokens (the target is forced as BOS)."""
    from transformers import M2M100Config, M2M100ForConditionalGeneration

    tokenizer = wrap_tokenizer(backend, "seq2seq")
    # Special, as in the real M2M tokenizer: decoding drops the forced language token.
    tokenizer.add_special_tokens({"additional_special_tokens": LANG_TOKENS})
    config = M2M100Config(vocab_size=len(tokenizer), d_model=d_model, encoder_layers=2, decoder_layers=2,
                          encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=2 * d_model,
                          decoder_ffn_dim=2 * d_model, max_position_embeddings=256, pad_token_id=0, eos_token_id=1,
                          bos_token_id=2, decoder_start_token_id=1, init_std=0.3)
    return _save(_seeded(lambda: M2M100ForConditionalGeneration(config), seed), tokenizer, path)


def build_llama(path: Path, backend, *, hidden: int = 32, layers: int = 2, max_positions: int = 256,
                chat: bool = False, seed: int = 0, heads: int = 4, kv_heads: int = 2,
                intermediate: int | None = None) -> Path:
    """A random Llama; `chat` gives its tokenizer a chat template, as instruct models have."""
    from transformers import LlamaConfig, LlamaForCausalLM

    return _build_causal(LlamaConfig, LlamaForCausalLM, path, backend, hidden=hidden, layers=layers, heads=heads,
                         kv_heads=kv_heads, intermediate=intermediate, max_positions=max_positions, chat=chat,
                         seed=seed)


def build_qwen2(path: Path, backend, *, hidden: int = 64, layers: int = 2, heads: int = 2, kv_heads: int = 1,
                intermediate: int | None = None, max_positions: int = 256, chat: bool = True, seed: int = 0) -> Path:
    """A random Qwen2 (grouped-query attention). The default head size, 32, is one vLLM's CPU
    attention supports, so this model runs on the vLLM engine too."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    return _build_causal(Qwen2Config, Qwen2ForCausalLM, path, backend, hidden=hidden, layers=layers, heads=heads,
                         kv_heads=kv_heads, intermediate=intermediate, max_positions=max_positions, chat=chat,
                         seed=seed)


def _build_causal(config_class, model_class, path: Path, backend, *, hidden: int, layers: int, heads: int,
                  kv_heads: int, intermediate: int | None, max_positions: int, chat: bool, seed: int) -> Path:
    tokenizer = wrap_tokenizer(backend, "causal", CHAT_TEMPLATE if chat else None)
    tokenizer.model_max_length = max_positions
    config = config_class(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=intermediate or 2 * hidden,
                          num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                          max_position_embeddings=max_positions, pad_token_id=0, eos_token_id=1, bos_token_id=2,
                          initializer_range=0.3, tie_word_embeddings=False)
    return _save(_seeded(lambda: model_class(config), seed), tokenizer, path)


def build_masked_lm(path: Path, backend, *, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """A random BERT-style masked LM over the byte-level vocabulary plus a <mask> token (contextual
    insertion in the augment stage)."""
    from tokenizers import processors
    from transformers import BertConfig, BertForMaskedLM

    tokenizer = wrap_tokenizer(backend, "seq2seq")
    tokenizer.add_special_tokens({"mask_token": MASK})
    tokenizer.model_max_length = 128
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}", special_tokens=[(BOS, 2), (EOS, 1)])
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=4, intermediate_size=2 * hidden, max_position_embeddings=128,
                        pad_token_id=0, initializer_range=0.5)
    return _save(_seeded(lambda: BertForMaskedLM(config), seed), tokenizer, path)


NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
# Words the tiny NER model tags, whatever surrounds them (first names start a person, surnames go on).
NER_WORDS = {"B-PER": ["Alice", "Bob", "Priya", "王芳"], "I-PER": ["Johnson", "Nakamura"],
             "B-LOC": ["Springfield", "Shenzhen", "深圳"], "I-LOC": ["Avenue"]}


def build_ner(path: Path, backend, *, max_positions: int = 48) -> Path:
    """A token-classification model whose output is known: no encoder layers, so each token's label
    comes from its own embedding. The words in NER_WORDS are whole tokens of the tokenizer and are
    tagged with their label; every other token is "O". A short input limit makes long rows need
    several windows."""
    import torch
    from tokenizers import AddedToken
    from transformers import BertConfig, BertForTokenClassification

    tokenizer = wrap_tokenizer(backend, "seq2seq")
    tokenizer.model_max_length = max_positions
    words = {word: label for label, group in NER_WORDS.items() for word in group}
    tokenizer.add_tokens([AddedToken(w, single_word=w.isascii(), normalized=False) for w in words])
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=0, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=max_positions + 2, pad_token_id=0,
                        id2label=dict(enumerate(NER_LABELS)), label2id={l: i for i, l in enumerate(NER_LABELS)})
    model = _seeded(lambda: BertForTokenClassification(config), 0)
    with torch.no_grad():
        n = len(NER_LABELS)
        embeddings = model.bert.embeddings
        embeddings.position_embeddings.weight.zero_()
        embeddings.token_type_embeddings.weight.zero_()
        embeddings.LayerNorm.weight.fill_(1.0)
        embeddings.LayerNorm.bias.zero_()

        def one_hot(label: int) -> torch.Tensor:
            vector = torch.zeros(config.hidden_size)
            vector[:n] = -1.0 / (n - 1)
            vector[label] = 1.0
            return vector

        table = embeddings.word_embeddings.weight
        table[:] = one_hot(0)
        for word, label in words.items():
            table[tokenizer.convert_tokens_to_ids(word)] = one_hot(NER_LABELS.index(label))
        model.classifier.weight.zero_()
        model.classifier.weight[:, :n] = torch.eye(n)  # a tagged word scores about 0.96
        model.classifier.bias.zero_()
    return _save(model, tokenizer, path)


@dataclass(frozen=True)
class TinyModels:
    """Paths of the test models (all share one tokenizer vocabulary)."""

    t5: Path  # declares T5's task prefixes, like t5-small
    t5_plain: Path  # declares none
    marian: Path  # 64 positions: long inputs must be truncated or chunked
    m2m: Path  # __en__/__de__/__fr__ language tokens
    llama: Path  # no chat template
    llama_chat: Path
    qwen2: Path  # chat template, head size 32: runs on vLLM's CPU build too
    masked_lm: Path  # BERT-style, with a <mask> token
    ner: Path  # token classification with known output (NER_WORDS)


_BUILT: TinyModels | None = None


def model_set(root: Path) -> TinyModels:
    """Build the test models once per process under `root` (unit and integration fixtures share them)."""
    global _BUILT
    if _BUILT is None or not _BUILT.t5.exists():
        from tests.conftest import eda_sentences

        backend = train_bpe([text for _, text in eda_sentences()], vocab_size=1000)
        root = Path(root)
        _BUILT = TinyModels(
            t5=build_t5(root / "t5", backend, init_factor=5.0),
            t5_plain=build_t5(root / "t5_plain", backend, init_factor=5.0, task_prefixes=False, seed=1),
            marian=build_marian(root / "marian", backend),
            m2m=build_m2m(root / "m2m", backend),
            llama=build_llama(root / "llama", backend),
            llama_chat=build_llama(root / "llama_chat", backend, chat=True, seed=1),
            qwen2=build_qwen2(root / "qwen2", backend, seed=2),
            masked_lm=build_masked_lm(root / "masked_lm", backend),
            ner=build_ner(root / "ner", backend),
        )
    return _BUILT
