"""Admission of paid work: the queue cap, the daily image budget and each user's quota, checked
and reserved as one step by every path that queues images to be paid for."""

from volcimage.quota.admission import (
    daily_limit,
    images_admitted_today,
    reserve,
    seconds_to_midnight,
)

__all__ = ["daily_limit", "images_admitted_today", "reserve", "seconds_to_midnight"]
