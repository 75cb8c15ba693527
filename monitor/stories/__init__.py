"""Story assignment: reports of one development from many outlets become one story.

The pure engine of the stories stage (no I/O besides reading the keyword file):

>>> from monitor.stories import StoryIndex, StoryItem, StorySettings, load_names
>>> index = StoryIndex(StorySettings(), load_names("config/keywords.toml"))
>>> index.restore_many(pairs)            # start-up: (StoryItem, story_id), oldest first
>>> assignment = index.assign(item)      # Assignment(story_id, is_new, near_duplicate_of, ...)
>>> assignments = index.assign_many(items)   # a poll's items, in order (MinHashes in one batch)
>>> index.expire(now)                    # forget what left the window

See ``monitor/stories/index.py`` for how items are matched and what bounds memory,
and ``python -m monitor.stories.evaluate [--as-daemon]`` for B-cubed scores on the ground truth.
"""

from monitor.stories.index import StoryIndex
from monitor.stories.items import Assignment, StoryItem, item_time, new_story_id
from monitor.stories.names import NameMatcher, default_keywords_path, load_names
from monitor.stories.settings import StorySettings

__all__ = [
    "Assignment",
    "NameMatcher",
    "StoryIndex",
    "StoryItem",
    "StorySettings",
    "default_keywords_path",
    "item_time",
    "load_names",
    "new_story_id",
]
