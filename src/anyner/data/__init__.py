"""Readers for the forms NER data comes in, and per-corpus label maps.

``read_examples(path)`` reads GLiNER JSON/JSONL, benchmark JSON and CoNLL-style
files into ``Example`` records plus a ``ReadReport`` of what was kept, skipped
and changed.
"""

from anyner.data.benchmark import iter_benchmark, read_benchmark_labels
from anyner.data.conll import iter_conll, parse_tag, tags_to_spans
from anyner.data.gliner_json import iter_gliner_json
from anyner.data.label_maps import available_label_maps, label_map_info, load_label_map
from anyner.data.readers import FORMATS, Format, detect_format, iter_examples, read_benchmark, read_examples
from anyner.data.report import OnError, ReadError, ReadReport

__all__ = [
    "FORMATS",
    "Format",
    "OnError",
    "ReadError",
    "ReadReport",
    "available_label_maps",
    "detect_format",
    "iter_benchmark",
    "iter_conll",
    "iter_examples",
    "iter_gliner_json",
    "label_map_info",
    "load_label_map",
    "parse_tag",
    "read_benchmark",
    "read_benchmark_labels",
    "read_examples",
    "tags_to_spans",
]
