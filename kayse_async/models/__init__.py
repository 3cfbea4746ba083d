"""The data kayse_async sends and returns: attrs classes, data only.

Fields are named exactly as the API's JSON fields. Dates are ``datetime.date``. Every object that
the server returns keeps the fields this version of the SDK does not know in ``extra``, and so a
value of a type that its field does not allow (the field keeps its default; a WARNING names it
once). ``to_dict()`` gives the wire form back, ``to_json()`` the same as text.
"""

from ._bulk import BulkItem, BulkProgress, BulkResult, BulkStatus, DeleteResult, Resolution
from ._campaigns import Agent, CallbackDelay, Campaign, CampaignStats, ScheduledCall
from ._case_lists import CaseList, CaseListUpsert
from ._cases import Case
from ._clients import Client
from ._metadata import FieldSchema, ObjectSchema
from ._quota import QuotaSnapshot

__all__ = [
    "Agent",
    "BulkItem",
    "BulkProgress",
    "BulkResult",
    "BulkStatus",
    "CallbackDelay",
    "Campaign",
    "CampaignStats",
    "Case",
    "CaseList",
    "CaseListUpsert",
    "Client",
    "DeleteResult",
    "FieldSchema",
    "ObjectSchema",
    "QuotaSnapshot",
    "Resolution",
    "ScheduledCall",
]
