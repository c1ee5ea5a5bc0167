"""Everything on the data's path before the model: reading, preprocessing, caching, auditing."""
