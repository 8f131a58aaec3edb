// openrooms demo: joins a group room with the unmodified twilio-video SDK, camera and microphone.
// The three connect options an app changes for openrooms (docs/clients.md): wsServer, iceServers, insights.
'use strict';

const byId = (id) => document.getElementById(id);
const status = (text) => { byId('status').textContent = text; };
const devTokens = document.body.dataset.dev === 'true';
let room = null;

async function accessToken(identity, name) {
  const pasted = byId('token').value.trim();
  if (pasted) return pasted;
  if (!devTokens) {
    throw new Error('no token: paste one from your app\'s server (or `openrooms token`), or run the server with --dev true');
  }
  const response = await fetch('/dev/token', {
    method: 'POST',
    headers: {'Content-Type': 'application/json'},
    body: JSON.stringify({identity, room: name}),
  });
  const body = await response.json();
  if (!response.ok) throw new Error(`POST /dev/token: ${body.message} (${body.code})`);
  return body.token;
}

function tileOf(participant) {
  const id = `participant-${participant.sid}`;
  let tile = byId(id);
  if (!tile) {
    tile = document.createElement('figure');
    tile.id = id;
    tile.className = 'tile remote';
    tile.dataset.identity = participant.identity;
    tile.innerHTML = '<div class="media"></div><figcaption></figcaption>';
    tile.querySelector('figcaption').textContent = participant.identity;
    byId('tiles').appendChild(tile);
  }
  return tile;
}

function showLocal(participant) {
  const media = byId('local').querySelector('.media');
  participant.videoTracks.forEach((publication) => media.appendChild(publication.track.attach()));
  byId('local').querySelector('figcaption').textContent = `${participant.identity} (you)`;
  byId('local').hidden = false;
}

function clear() {
  document.querySelectorAll('.tile.remote').forEach((tile) => tile.remove());
  byId('local').querySelector('.media').replaceChildren();
  byId('local').hidden = true;
  byId('controls').hidden = true;
  byId('join-button').disabled = false;
  byId('mute').textContent = 'Mute';
  byId('camera').textContent = 'Stop camera';
  room = null;
}

function follow(connected) {
  connected.on('participantConnected', (participant) => {
    tileOf(participant);
    status(`${participant.identity} joined`);
  });
  connected.on('participantDisconnected', (participant) => {
    const tile = byId(`participant-${participant.sid}`);
    if (tile) tile.remove();
    status(`${participant.identity} left`);
  });
  connected.on('trackSubscribed', (track, publication, participant) => {
    tileOf(participant).querySelector('.media').appendChild(track.attach());
  });
  connected.on('trackUnsubscribed', (track) => track.detach().forEach((element) => element.remove()));
  connected.on('disconnected', (_room, error) => {
    connected.localParticipant.tracks.forEach((publication) => publication.track.stop && publication.track.stop());
    clear();
    status(error ? `Disconnected: ${error.message} (${error.code})` : 'Left the room.');
  });
}

async function join(event) {
  event.preventDefault();
  if (!window.Twilio || !window.Twilio.Video) {
    status('The twilio-video SDK did not load from /sdk/twilio-video.min.js: see the notice above.');
    return;
  }
  const identity = byId('identity').value.trim();
  const name = byId('room').value.trim();
  byId('join-button').disabled = true;
  status(`Joining ${name}…`);
  try {
    const token = await accessToken(identity, name);
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    room = await Twilio.Video.connect(token, {
      name,
      wsServer: `${scheme}//${location.host}/signaling`,
      iceServers: [],
      insights: false,
      audio: true,
      video: {width: 640, height: 480},
    });
  } catch (error) {
    byId('join-button').disabled = false;
    status(`Could not join: ${error.message}${error.code ? ` (${error.code})` : ''}`);
    return;
  }
  showLocal(room.localParticipant);
  room.participants.forEach((participant) => {
    const media = tileOf(participant).querySelector('.media');
    participant.tracks.forEach((publication) => {  // subscribed before the listeners below existed
      if (publication.track) media.appendChild(publication.track.attach());
    });
  });
  follow(room);
  byId('controls').hidden = false;
  status(`In room ${room.name} (${room.sid}) as ${room.localParticipant.identity}`);
}

function toggle(kind, button, on, off) {
  if (!room) return;
  room.localParticipant[`${kind}Tracks`].forEach(({track}) => {
    if (track.isEnabled) {
      track.disable();
      button.textContent = off;
    } else {
      track.enable();
      button.textContent = on;
    }
  });
}

byId('join').addEventListener('submit', join);
byId('leave').addEventListener('click', () => room && room.disconnect());
byId('mute').addEventListener('click', (event) => toggle('audio', event.target, 'Mute', 'Unmute'));
byId('camera').addEventListener('click', (event) => toggle('video', event.target, 'Stop camera', 'Start camera'));
window.addEventListener('beforeunload', () => room && room.disconnect());
