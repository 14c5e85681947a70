"""The webhook RingCentral delivers telephony-session events to (`/ringcentral/webhook`)."""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from sscl.services import WebhookInvalid, WebhookRefused, webhook_receive

# RingCentral's deliveries are small; anything much larger is not one of them.
MAX_BODY_BYTES = 256 * 1024


@method_decorator(csrf_exempt, name="dispatch")
class RingCentralWebhookView(View):
    """Answers RingCentral's validation handshake, and stores each delivery and queues it.

    The handshake (developers.ringcentral.com, "Creating webhooks"): a request carrying a
    `Validation-Token` header is answered 200 with the same header, at once. A delivery
    is answered 200 once stored; no RingCentral or CRM call happens here.
    """

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> HttpResponse:
        validation_token = request.headers.get("Validation-Token")
        if validation_token is not None:
            response = HttpResponse(status=200, content_type="application/json")
            response["Validation-Token"] = validation_token[:256]
            return response
        if len(request.body) > MAX_BODY_BYTES:
            return JsonResponse({"error": "Delivery too large."}, status=413)
        try:
            body = json.loads(request.body)
            webhook_receive(verification_token=request.headers.get("Verification-Token", ""), body=body)
        except (ValueError, WebhookInvalid) as exc:
            return JsonResponse(
                {"error": str(exc) if isinstance(exc, WebhookInvalid) else "Not JSON."}, status=400
            )
        except WebhookRefused as exc:
            return JsonResponse({"error": str(exc)}, status=403)
        return HttpResponse(status=200)
