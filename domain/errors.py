"""Domain errors, each carrying the Twilio error code an app sees.

    DomainError (code, message, status)
    ├── InvalidParameterError          21xxx/53xxx validation of a command's parameters
    │   ├── RoomNameTooLongError           53101
    │   ├── RoomNameCharsInvalidError      53102
    │   ├── RoomTypeInvalidError           53108
    │   ├── MaxParticipantsOutOfRangeError 53107
    │   ├── TimeoutOutOfRangeError         53109
    │   ├── StatusCallbackMethodInvalidError 53110
    │   ├── StatusCallbackInvalidError     53111
    │   ├── RoomStatusInvalidError         53112
    │   ├── InvalidParametersForTypeError  53114
    │   ├── MaxParticipantDurationOutOfRangeError 53123
    │   ├── AudioOnlyNotSupportedError     53124
    │   ├── ParticipantIdentityInvalidError 53200 / 53201 / 53202
    │   ├── TrackNameInvalidError          53301 / 53302 / 53303
    │   ├── SubscribeRulesInvalidError     53215
    │   └── RecordingRulesInvalidError     53120
    ├── NotFoundError                  20404 (room 53106, participant 53204, track, recording)
    ├── ConflictError
    │   ├── RoomExistsError                53113
    │   ├── RoomCompletedError             53118
    │   ├── RoomFullError                  53105
    │   ├── AccountParticipantCapError     53206
    │   ├── TrackNameDuplicatedError       53304
    │   ├── TrackCapExceededError          53203
    │   └── TrackKindNotSupportedError     53125
    ├── RoomCreateFailedError          53103 (client-side room creation disabled)
    ├── UnsupportedForRoomTypeError    53117 / 53122
    ├── IllegalTransitionError         a command not legal in the entity's state
    └── AccessTokenError               201xx, HTTP 401: an access token that is refused
        ├── AccessTokenInvalidError          20101 (not a JWT, undecodable)
        ├── AccessTokenHeaderInvalidError    20102 (alg not HS256, cty not twilio-fpa;v=1)
        ├── AccessTokenIssuerInvalidError    20103 (iss not a known API key, sub not this account)
        ├── AccessTokenExpiredError          20104 (expired, exp missing, lifetime over 24 h)
        ├── AccessTokenNotYetValidError      20105 (nbf in the future)
        ├── AccessTokenGrantsInvalidError    20106 (identity, video grant, room)
        └── AccessTokenSignatureInvalidError 20107

`status` is the HTTP status the REST API answers with; the code is what Twilio apps switch on.
"""

from __future__ import annotations


class DomainError(Exception):
    code: int = 0
    status: int = 400

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidParameterError(DomainError):
    code = 21200


class RoomNameTooLongError(InvalidParameterError):
    code = 53101

    def __init__(self, length: int) -> None:
        super().__init__(f"Room name is too long ({length} > 128 characters)")


class RoomNameCharsInvalidError(InvalidParameterError):
    code = 53102

    def __init__(self) -> None:
        super().__init__("Room name contains invalid characters")


class RoomTypeInvalidError(InvalidParameterError):
    code = 53108

    def __init__(self, room_type: str) -> None:
        super().__init__(f"RoomType is not valid: {room_type!r}")


class MaxParticipantsOutOfRangeError(InvalidParameterError):
    code = 53107

    def __init__(self, value: int, cap: int) -> None:
        super().__init__(f"MaxParticipants is out of range: {value} (1..{cap})")


class TimeoutOutOfRangeError(InvalidParameterError):
    code = 53109

    def __init__(self, name: str, value: int) -> None:
        super().__init__(f"Timeout is out of range: {name}={value} (1..60 minutes)")


class StatusCallbackMethodInvalidError(InvalidParameterError):
    code = 53110

    def __init__(self, method: str) -> None:
        super().__init__(f"StatusCallbackMethod is invalid: {method!r}")


class StatusCallbackInvalidError(InvalidParameterError):
    code = 53111

    def __init__(self, url: str) -> None:
        super().__init__(f"StatusCallback is invalid: {url[:80]!r}")


class RoomStatusInvalidError(InvalidParameterError):
    code = 53112

    def __init__(self, detail: str) -> None:
        super().__init__(f"Status is invalid: {detail}")


class InvalidParametersForTypeError(InvalidParameterError):
    code = 53114

    def __init__(self, parameter: str, room_type: str) -> None:
        super().__init__(f"Room creation parameter {parameter} is incompatible with the Room type {room_type}")


class MaxParticipantDurationOutOfRangeError(InvalidParameterError):
    code = 53123

    def __init__(self, value: int) -> None:
        super().__init__(f"MaxParticipantDuration is out of range: {value} (600..86400 seconds)")


class AudioOnlyNotSupportedError(InvalidParameterError):
    code = 53124

    def __init__(self, room_type: str) -> None:
        super().__init__(f"The AudioOnly flag is not supported for the Room type {room_type}")


class ParticipantIdentityInvalidError(InvalidParameterError):
    code = 53200

    def __init__(self, detail: str = "Participant identity is invalid", *, code: int = 53200) -> None:
        super().__init__(detail, code=code)


class TrackNameInvalidError(InvalidParameterError):
    code = 53301

    def __init__(self, detail: str = "Track name is invalid", *, code: int = 53301) -> None:
        super().__init__(detail, code=code)


class SubscribeRulesInvalidError(InvalidParameterError):
    code = 53215

    def __init__(self, detail: str) -> None:
        super().__init__(f"Invalid Subscribe Rule(s): {detail}")


class RecordingRulesInvalidError(InvalidParameterError):
    code = 53120

    def __init__(self, detail: str) -> None:
        super().__init__(f"Invalid Recording Rule(s): {detail}")


class NotFoundError(DomainError):
    code = 20404
    status = 404


class RoomNotFoundError(NotFoundError):
    code = 53106

    def __init__(self, room: str) -> None:
        super().__init__(f"Room not found: {room}")


class ParticipantNotFoundError(NotFoundError):
    code = 53204

    def __init__(self, participant: str) -> None:
        super().__init__(f"Participant not found: {participant}")


class TrackNotFoundError(NotFoundError):
    code = 20404

    def __init__(self, track: str) -> None:
        super().__init__(f"Track not found: {track}")


class RecordingNotFoundError(NotFoundError):
    code = 20404

    def __init__(self, recording: str) -> None:
        super().__init__(f"Recording not found: {recording}")


class ConflictError(DomainError):
    pass


class RoomExistsError(ConflictError):
    code = 53113

    def __init__(self, unique_name: str) -> None:
        super().__init__(f"Room exists: {unique_name}")


class RoomCompletedError(ConflictError):
    code = 53118

    def __init__(self, room_sid: str) -> None:
        super().__init__(f"Room completed: {room_sid}")


class RoomFullError(ConflictError):
    code = 53105

    def __init__(self, room_sid: str, max_participants: int) -> None:
        super().__init__(f"Room contains too many Participants: {room_sid} allows {max_participants}")


class AccountParticipantCapError(ConflictError):
    code = 53206

    def __init__(self, cap: int) -> None:
        super().__init__(f"Concurrent go-room participants quota exceeded ({cap})")


class TrackNameDuplicatedError(ConflictError):
    code = 53304

    def __init__(self, name: str) -> None:
        super().__init__(f"Track name is duplicated: {name}")


class TrackCapExceededError(ConflictError):
    code = 53203

    def __init__(self, cap: int) -> None:
        super().__init__(
            f"The maximum number of published tracks allowed in the Room at the same time has been reached ({cap})"
        )


class TrackKindNotSupportedError(ConflictError):
    code = 53125

    def __init__(self, kind: str) -> None:
        super().__init__(f"The track kind is not supported by the Room: {kind}")


class RoomCreateFailedError(DomainError):
    code = 53103

    def __init__(self, detail: str) -> None:
        super().__init__(f"Unable to create Room: {detail}")


class UnsupportedForRoomTypeError(DomainError):
    def __init__(self, operation: str, room_type: str, *, code: int) -> None:
        super().__init__(f"The {operation} operation is not supported for the Room type {room_type}", code=code)


class IllegalTransitionError(DomainError):
    code = 53000

    def __init__(self, entity: str, state: str, trigger: str) -> None:
        super().__init__(f"Cannot {trigger} a {entity} that is {state}")


class AccessTokenError(DomainError):
    """An access token refused; never echoes the token or a secret back."""

    code = 20101
    status = 401


class AccessTokenInvalidError(AccessTokenError):
    code = 20101

    def __init__(self, detail: str) -> None:
        super().__init__(f"Invalid Access Token: {detail}")


class AccessTokenHeaderInvalidError(AccessTokenError):
    code = 20102

    def __init__(self, detail: str) -> None:
        super().__init__(f"Invalid Access Token header: {detail}")


class AccessTokenIssuerInvalidError(AccessTokenError):
    code = 20103

    def __init__(self, detail: str) -> None:
        super().__init__(f"Invalid Access Token issuer/subject: {detail}")


class AccessTokenExpiredError(AccessTokenError):
    code = 20104

    def __init__(self, detail: str) -> None:
        super().__init__(f"Access Token expired or expiration date invalid: {detail}")


class AccessTokenNotYetValidError(AccessTokenError):
    code = 20105

    def __init__(self, detail: str) -> None:
        super().__init__(f"Access Token not yet valid: {detail}")


class AccessTokenGrantsInvalidError(AccessTokenError):
    code = 20106

    def __init__(self, detail: str) -> None:
        super().__init__(f"Invalid Access Token grants: {detail}")


class AccessTokenSignatureInvalidError(AccessTokenError):
    code = 20107

    def __init__(self, key_sid: str) -> None:
        self.key_sid = key_sid
        super().__init__(f"Invalid Access Token signature: not signed with the secret of API key {key_sid}")
