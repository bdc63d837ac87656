@echo off
rem 6) train SAEHD: train SAEHD on data_src/aligned and data_dst/aligned into workspace/model; asks
rem the model options on the first run. Pretraining reads any aligned faces in
rem workspace/pretrain_faces.
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" train ^
    --training-data-src-dir "%WORKSPACE%\data_src\aligned" ^
    --training-data-dst-dir "%WORKSPACE%\data_dst\aligned" ^
    --pretraining-data-dir "%WORKSPACE%\pretrain_faces" ^
    --model-dir "%WORKSPACE%\model" ^
    --model SAEHD ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
